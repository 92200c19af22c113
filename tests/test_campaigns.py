"""Campaigns: the API, CSV contacts, and dispatch with controlled time against a fake Plivo API."""
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from django.core.cache import cache
from django.db import connection, transaction

from voicebots.calls import services as calls
from voicebots.calls.models import Call
from voicebots.campaigns import clock, dialer, dispatch, tasks, windows
from voicebots.campaigns.models import Attempt, Campaign, Contact
from voicebots.providers import plivo_api

UTC = timezone.utc
ALL_WEEK = {day: [["09:00", "17:00"]] for day in windows.DAYS}
MONDAY_1430 = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)  # 09:30 in New York (EST), 06:30 in Los Angeles (PST)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta) -> None:
        self.at += timedelta(**delta)


@pytest.fixture
def now(monkeypatch):
    controlled = Clock(MONDAY_1430)
    monkeypatch.setattr(clock, "now", controlled)
    return controlled


@pytest.fixture(autouse=True)
def _fast_plivo_failures(fast_plivo_failures):
    pass


@pytest.fixture
def fake_plivo(fake_plivo, settings):
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    return fake_plivo


@pytest.fixture
def bot(api, fake_plivo):
    api.account.plivo_auth_id, api.account.plivo_auth_token = fake_plivo.auth_id, fake_plivo.auth_token
    api.account.save()
    return api.post("Voicebot/", {"name": "Reminders", "prompt": "Remind {{first_name}} of order {{order}}.",
                                  "welcome_message": "Hello {{first_name}}!"}).json()


def new_campaign(api, bot, **fields):
    body = {"name": "Spring reminders", "voicebot_id": bot["id"], "caller_ids": ["+14155550100", "+14155550101"],
            "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2025-12-31T00:00:00Z", "timezone": "America/New_York",
            "calling_windows": ALL_WEEK, "max_concurrent_calls": 10, "retry_delay_minutes": 30, **fields}
    response = api.post("Campaign/", body)
    assert response.status_code == 201, response.content
    return response.json()


def upload(api, campaign, csv: str, skip_invalid=False):
    query = "?skip_invalid=true" if skip_invalid else ""
    return api.upload(f"Campaign/{campaign['id']}/contacts{query}", "contacts.csv", csv.encode())


def contacts_csv(count: int, first: int = 1) -> str:
    rows = [f"+1212555{n:04d},Person{n},{n}" for n in range(first, first + count)]
    return "phone,first_name,order\n" + "\n".join(rows) + "\n"


@pytest.fixture
def running(api, bot, now):
    """A scheduled campaign with 5 New York contacts, a limit of 2 concurrent calls."""
    def make(count=5, **fields):
        campaign = new_campaign(api, bot, **{"max_concurrent_calls": 2, **fields})
        assert upload(api, campaign, contacts_csv(count)).status_code == 201
        assert api.post(f"Campaign/{campaign['id']}/schedule").status_code == 200
        return campaign
    return make


def run_dispatch(campaign) -> int:
    return tasks.dispatch_campaign(campaign["id"])


def contact(phone) -> Contact:
    return Contact.objects.get(phone_number=phone)


def plivo_call_to(fake, phone):
    return [call for call in fake.calls if call.params["to"] == phone.lstrip("+")][-1]


def hang_up(client, fake, phone, status="completed", answered=True, **extra):
    """Plivo's callbacks for the latest call to `phone`: answer (optionally), then hangup with `status`."""
    fired = plivo_call_to(fake, phone)
    for kind, params in ((("answer", {"CallStatus": "in-progress"}),) if answered else ()) + (
            ("hangup", {"CallStatus": status, "HangupCause": "X", "Duration": "5", **extra}),):
        url = fired.params[f"{kind}_url"]
        payload = fake.callback_params(fired, **params)
        response = client.post(urlsplit(url).path, payload, headers=fake.signature_headers(url, payload))
        assert response.status_code < 300, response.content
    fired.end(status, "Callee")


def states() -> dict:
    return dict(Contact.objects.values_list("phone_number", "state"))


# --- The API -------------------------------------------------------------------------------------------

def test_a_campaign_is_created_as_a_draft_with_defaults(api, bot):
    campaign = new_campaign(api, bot)
    assert campaign["status"] == "draft" and campaign["voicebot_id"] == bot["id"]
    assert campaign["retry_on"] == ["busy", "no-answer", "failed"] and campaign["max_attempts"] == 3
    assert campaign["voicemail_action"] == "hang_up" and campaign["machine_detection"] is False
    assert campaign["progress"] == {"total": 0, "dialed": 0, "answered": 0, "completed": 0, "voicemail": 0,
                                    "failed": 0, "skipped": 0, "remaining": 0, "in_call": 0, "calls_placed": 0}
    listing = api.get("Campaign/").json()
    assert listing["meta"]["total_count"] == 1 and listing["campaigns"][0]["id"] == campaign["id"]


@pytest.mark.parametrize("change, field", [
    ({"voicebot_id": None}, "voicebot_id"),
    ({"voicebot_id": "00000000-0000-4000-8000-000000000000"}, "voicebot_id"),
    ({"caller_ids": ["4155550100"]}, "caller_ids[0]"),
    ({"caller_ids": []}, "caller_ids"),
    ({"caller_ids": ["+14155550100", "+14155550100"]}, "caller_ids"),
    ({"calling_windows": {"mon": [["17:00", "09:00"]]}}, "calling_windows"),
    ({"calling_windows": {"monday": [["09:00", "17:00"]]}}, "calling_windows"),
    ({"calling_windows": {"mon": [["9am", "5pm"]]}}, "calling_windows"),
    ({"ends_at": "2025-02-01T00:00:00Z"}, "ends_at"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"retry_on": ["busy", "lunch"]}, "retry_on[1]"),
    ({"max_concurrent_calls": 0}, "max_concurrent_calls"),
    ({"machine_detection": True, "voicemail_action": "leave_message"}, "voicemail_message"),
    ({"status": "running"}, "status"),
])
def test_bad_campaign_parameters_are_400s(api, bot, change, field):
    body = {"name": "X", "voicebot_id": bot["id"], "caller_ids": ["+14155550100"],
            "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2025-12-31T00:00:00Z", **change}
    response = api.post("Campaign/", body)
    assert response.status_code == 400, response.content
    assert field in response.json()["details"], response.json()


def test_a_campaign_needs_a_bot(api, bot):
    body = {"name": "X", "caller_ids": ["+14155550100"], "starts_at": "2025-03-01T00:00:00Z",
            "ends_at": "2025-12-31T00:00:00Z"}
    response = api.post("Campaign/", body)
    assert response.status_code == 400 and "voicebot_id" in response.json()["details"]


def test_windows_that_end_before_they_start_are_named(api, bot):
    response = api.post("Campaign/", {"name": "X", "voicebot_id": bot["id"], "caller_ids": ["+14155550100"],
                                      "starts_at": "2025-03-01T00:00:00Z", "ends_at": "2025-12-31T00:00:00Z",
                                      "calling_windows": {"tue": [["18:00", "08:00"]]}})
    assert "tue: the window 18:00-08:00 ends before it starts" in response.json()["details"]["calling_windows"][0]


def test_other_accounts_cannot_see_or_touch_a_campaign(api, other_api, bot):
    campaign = new_campaign(api, bot)
    assert other_api.get(f"Campaign/{campaign['id']}/").status_code == 404
    assert other_api.post(f"Campaign/{campaign['id']}/schedule").status_code == 404
    assert other_api.upload(f"Campaign/{campaign['id']}/contacts", "c.csv", b"phone\n+14155550111\n").status_code == 404


# --- CSV contacts ----------------------------------------------------------------------------------------

def test_contacts_import_from_csv_with_variables_and_time_zones(api, bot):
    campaign = new_campaign(api, bot)
    csv = ("phone,first_name,order,timezone\n"
           "+12125550101,Ann,1,\n"
           '+13105550102,"Bob, Jr.",2,America/Los_Angeles\n'
           "\n"
           "+442075550103,Cat,3,Europe/London\n")
    response = upload(api, campaign, csv)
    assert response.status_code == 201, response.content
    assert response.json()["imported"] == 3 and response.json()["rejected"] == []
    bob = contact("+13105550102")
    assert bob.variables == {"first_name": "Bob, Jr.", "order": "2"} and bob.timezone == "America/Los_Angeles"
    assert (bob.line_number, contact("+442075550103").line_number) == (3, 5)
    assert contact("+12125550101").timezone == ""  # the campaign's
    listing = api.get(f"Campaign/{campaign['id']}/contacts", {"limit": 2}).json()
    assert listing["meta"]["total_count"] == 3 and [c["line_number"] for c in listing["contacts"]] == [2, 3]


BAD_ROWS = ("phone,first_name,order,timezone\n"
            "+12125550101,Ann,1,\n"          # 2: fine
            "2125550102,Bob,2,\n"            # 3: not E.164
            "+12125550101,Ann again,1,\n"    # 4: a duplicate of line 2
            "+12125550104,,4,\n"             # 5: no first_name for {{first_name}}
            "+12125550105,Eve,5,Moon/Base\n"  # 6: unknown time zone
            "+12125550106,Fay,6\n"           # 7: a field short
            "+12125550107,Gus,7,\n")         # 8: fine


def test_invalid_rows_are_reported_by_line_and_nothing_is_imported(api, bot):
    campaign = new_campaign(api, bot)
    response = upload(api, campaign, BAD_ROWS)
    assert response.status_code == 400
    body = response.json()
    assert "5 row(s)" in body["error"] and "skip_invalid" in body["error"]
    details = body["details"]
    assert set(details) == {"line 3", "line 4", "line 5", "line 6", "line 7"}
    assert "+2125550102" in details["line 3"][0]
    assert "repeats the number of line 2" in details["line 4"][0]
    assert "{{first_name}}" in details["line 5"][0]
    assert "Moon/Base" in details["line 6"][0]
    assert "3 fields where the header has 4" in details["line 7"][0]
    assert not Contact.objects.exists()


def test_skip_invalid_imports_the_valid_rows_and_still_reports_the_others(api, bot):
    campaign = new_campaign(api, bot)
    body = upload(api, campaign, BAD_ROWS, skip_invalid=True).json()
    assert body["imported"] == 2 and [r["line"] for r in body["rejected"]] == [3, 4, 5, 6, 7]
    assert body["rejected"][0]["phone_number"] == "2125550102"
    # A later upload repeating a number already in the campaign reports it too.
    again = upload(api, campaign, "phone,first_name,order\n+12125550107,Gus,7\n+12125550108,Hal,8\n",
                   skip_invalid=True).json()
    assert again["imported"] == 1 and "already a contact" in again["rejected"][0]["error"]
    assert again["total_contacts"] == 3


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\xff\xfephone\n", "UTF-8"),
    (b"number,name\n+12125550101,Ann\n", "no phone column"),
    (b"phone,first name\n+12125550101,Ann\n", "first_name"),
    (b"phone,order,order\n+12125550101,1,2\n", "more than once"),
    (b"phone,first_name,order\n", "no contacts"),
    (b'phone,first_name,order\n+12125550101,"Ann,1\n', "Malformed CSV"),
])
def test_a_malformed_csv_is_a_400_that_says_why(api, bot, content, message):
    campaign = new_campaign(api, bot)
    response = api.upload(f"Campaign/{campaign['id']}/contacts", "c.csv", content)
    assert response.status_code == 400, response.content
    assert message in response.json()["details"]["file"][0]


def test_an_upload_without_a_file_is_a_400(api, bot):
    campaign = new_campaign(api, bot)
    assert api.post(f"Campaign/{campaign['id']}/contacts", {}).status_code in (400, 415)


# --- Life cycle ------------------------------------------------------------------------------------------

def test_scheduling_needs_contacts_and_values_for_the_bots_placeholders(api, bot, now):
    campaign = new_campaign(api, bot)
    response = api.post(f"Campaign/{campaign['id']}/schedule")
    assert response.status_code == 409 and "no contacts" in response.json()["error"]
    api.patch(f"Voicebot/{bot['id']}", {"prompt": "Remind {{first_name}}."})
    assert upload(api, campaign, "phone,first_name\n+12125550101,Ann\n").status_code == 201
    api.patch(f"Voicebot/{bot['id']}", {"prompt": "Remind {{first_name}} of {{order}}."})  # needs more now
    response = api.post(f"Campaign/{campaign['id']}/schedule")
    assert response.status_code == 409 and "1 contact(s) have no value for {{order}}" in response.json()["error"]
    api.patch(f"Voicebot/{bot['id']}", {"prompt": "Remind {{first_name}}."})
    assert api.post(f"Campaign/{campaign['id']}/schedule").status_code == 200
    assert api.post(f"Campaign/{campaign['id']}/schedule").status_code == 409  # not a draft any more


def test_pause_resume_and_cancel_follow_the_state_machine(api, running, now, fake_plivo):
    campaign = running()
    path = f"Campaign/{campaign['id']}"
    assert api.get(path).json()["status"] == "scheduled"
    assert api.post(f"{path}/resume").status_code == 409
    assert api.patch(path, {"max_concurrent_calls": 3}).status_code == 204  # scheduled: editable
    run_dispatch(campaign)
    assert api.get(path).json()["status"] == "running"
    assert api.patch(path, {"max_concurrent_calls": 4}).status_code == 409  # running: pause first
    assert api.delete(path).status_code == 409
    assert api.post(f"{path}/pause").json()["status"] == "paused"
    assert api.post(f"{path}/resume").json()["status"] == "running"
    cancelled = api.post(f"{path}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["skipped"] == 2
    assert api.post(f"{path}/cancel").status_code == 409
    assert api.upload(f"{path}/contacts", "c.csv", b"phone,first_name,order\n+19995550100,Z,1\n").status_code == 409
    assert api.delete(path).status_code == 204


# --- Dispatch: windows and time zones -----------------------------------------------------------------------

def test_only_contacts_inside_their_local_window_are_dialed(api, bot, now, fake_plivo):
    campaign = new_campaign(api, bot)
    upload(api, campaign, "phone,first_name,order,timezone\n"
                          "+12125550101,Ann,1,\n"  # the campaign's zone, New York: 09:30, open
                          "+13105550102,Bob,2,America/Los_Angeles\n"  # 06:30: closed
                          "+442075550103,Cat,3,Europe/London\n"  # 14:30: open
                          "+81355550104,Dan,4,Asia/Tokyo\n")  # 23:30: closed
    api.post(f"Campaign/{campaign['id']}/schedule")
    assert run_dispatch(campaign) == 2
    assert sorted(c.params["to"] for c in fake_plivo.calls) == ["12125550101", "442075550103"]
    assert contact("+13105550102").next_attempt_at == datetime(2025, 3, 3, 17, 0, tzinfo=UTC)  # 09:00 PST
    assert contact("+81355550104").next_attempt_at == datetime(2025, 3, 4, 0, 0, tzinfo=UTC)  # 09:00 JST
    now.advance(hours=2, minutes=31)  # 17:01 UTC: 09:01 in Los Angeles
    assert run_dispatch(campaign) == 1
    assert plivo_call_to(fake_plivo, "+13105550102")
    assert states()["+81355550104"] == "pending"


@pytest.mark.parametrize("at, is_open, opening", [
    # March 2025: New York moves from EST (UTC-5) to EDT (UTC-4) on Sunday the 9th.
    (datetime(2025, 3, 7, 13, 30, tzinfo=UTC), False, datetime(2025, 3, 7, 14, 0, tzinfo=UTC)),
    (datetime(2025, 3, 7, 14, 30, tzinfo=UTC), True, None),
    (datetime(2025, 3, 8, 12, 0, tzinfo=UTC), False, datetime(2025, 3, 10, 13, 0, tzinfo=UTC)),  # weekend, change
    (datetime(2025, 3, 10, 13, 30, tzinfo=UTC), True, None),
    (datetime(2025, 3, 10, 12, 59, tzinfo=UTC), False, datetime(2025, 3, 10, 13, 0, tzinfo=UTC)),
    # November 2025: back to EST on Sunday the 2nd.
    (datetime(2025, 10, 31, 13, 30, tzinfo=UTC), True, None),
    (datetime(2025, 11, 3, 13, 30, tzinfo=UTC), False, datetime(2025, 11, 3, 14, 0, tzinfo=UTC)),
    (datetime(2025, 11, 1, 22, 0, tzinfo=UTC), False, datetime(2025, 11, 3, 14, 0, tzinfo=UTC)),
])
def test_a_9am_window_in_new_york_follows_daylight_saving(at, is_open, opening):
    weekdays = windows.parse({day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")})
    assert windows.is_open(weekdays, "America/New_York", at) is is_open
    assert windows.next_opening(weekdays, "America/New_York", at) == (at if is_open else opening)


def test_dispatch_across_the_spring_change_dials_at_9_local(api, bot, now, fake_plivo):
    now.at = datetime(2025, 3, 7, 22, 30, tzinfo=UTC)  # Friday 17:30 EST: closed
    campaign = new_campaign(api, bot, calling_windows={"mon": [["09:00", "10:00"]]})
    upload(api, campaign, contacts_csv(1))
    api.post(f"Campaign/{campaign['id']}/schedule")
    assert run_dispatch(campaign) == 0
    assert contact("+12125550001").next_attempt_at == datetime(2025, 3, 10, 13, 0, tzinfo=UTC)  # 09:00 EDT
    now.at = datetime(2025, 3, 10, 12, 59, tzinfo=UTC)
    assert run_dispatch(campaign) == 0
    now.at = datetime(2025, 3, 10, 13, 0, tzinfo=UTC)
    assert run_dispatch(campaign) == 1


def test_nothing_is_dialed_before_the_start_and_pending_contacts_are_skipped_at_the_end(api, running, now):
    campaign = running(starts_at="2025-03-04T00:00:00Z", ends_at="2025-03-05T00:00:00Z")
    assert run_dispatch(campaign) == 0 and api.get(f"Campaign/{campaign['id']}").json()["status"] == "scheduled"
    now.at = datetime(2025, 3, 5, 0, 0, tzinfo=UTC)
    run_dispatch(campaign)
    body = api.get(f"Campaign/{campaign['id']}").json()
    assert body["status"] == "completed" and body["progress"]["skipped"] == 5


# --- Dispatch: concurrency, retries, pause --------------------------------------------------------------------

def test_the_concurrency_limit_counts_live_calls(api, running, now, fake_plivo, client):
    campaign = running(count=5)
    assert run_dispatch(campaign) == 2
    assert run_dispatch(campaign) == 0  # two calls are live
    hang_up(client, fake_plivo, "+12125550001")
    assert run_dispatch(campaign) == 1
    assert len(fake_plivo.calls) == 3
    assert Call.objects.filter(status__in=calls.LIVE).count() == 2


def test_a_hangup_dials_the_next_contact_at_once(api, running, now, fake_plivo, client,
                                                 django_capture_on_commit_callbacks):
    campaign = running(count=3, max_concurrent_calls=1)
    run_dispatch(campaign)
    with django_capture_on_commit_callbacks(execute=True):
        hang_up(client, fake_plivo, "+12125550001")
    assert plivo_call_to(fake_plivo, "+12125550002").live  # no beat tick needed


def test_busy_and_no_answer_are_retried_after_the_delay_up_to_the_limit(api, running, now, fake_plivo, client):
    campaign = running(count=1, max_attempts=2, retry_delay_minutes=30)
    phone = "+12125550001"
    run_dispatch(campaign)
    hang_up(client, fake_plivo, phone, status="busy", answered=False)
    first = contact(phone)
    assert (first.state, first.attempts, first.outcome) == ("pending", 1, "busy")
    assert first.next_attempt_at == now.at + timedelta(minutes=30)
    now.advance(minutes=29)
    assert run_dispatch(campaign) == 0
    now.advance(minutes=1)
    assert run_dispatch(campaign) == 1
    fired = plivo_call_to(fake_plivo, phone)
    assert fired.params["from"] != fake_plivo.calls[0].params["from"]  # the next caller id in turn
    hang_up(client, fake_plivo, phone, status="no-answer", answered=False)
    assert (contact(phone).state, contact(phone).attempts) == ("failed", 2)
    run_dispatch(campaign)
    assert api.get(f"Campaign/{campaign['id']}").json()["status"] == "completed"


def test_voicemail_is_not_retried_by_default(api, running, now, fake_plivo, client):
    campaign = running(count=1)
    run_dispatch(campaign)
    hang_up(client, fake_plivo, "+12125550001", Machine="true")
    assert contact("+12125550001").state == "voicemail"


def test_a_plivo_failure_when_dialing_follows_the_retry_policy(api, running, now, fake_plivo):
    campaign = running(count=1)
    fake_plivo.fail_next(503, times=plivo_api.RETRY_ATTEMPTS, path="/Call/")
    run_dispatch(campaign)
    failed = contact("+12125550001")
    assert (failed.state, failed.outcome, failed.attempts) == ("pending", "failed", 1)
    assert "Plivo" in failed.last_error
    now.advance(minutes=30)
    assert run_dispatch(campaign) == 1 and contact("+12125550001").state == "calling"


def test_refused_plivo_credentials_pause_the_campaign_and_put_the_contact_back(api, running, now, fake_plivo):
    campaign = running(count=1)
    api.account.plivo_auth_token = "wrong"
    api.account.save()
    run_dispatch(campaign)
    body = api.get(f"Campaign/{campaign['id']}").json()
    assert body["status"] == "paused" and "credentials" in body["status_reason"]
    assert (contact("+12125550001").state, contact("+12125550001").attempts) == ("pending", 0)
    assert not Call.objects.exists()


def test_pause_and_resume_mid_run(api, running, now, fake_plivo, client):
    campaign = running(count=4)
    run_dispatch(campaign)
    api.post(f"Campaign/{campaign['id']}/pause")
    hang_up(client, fake_plivo, "+12125550001")  # calls under way finish normally
    assert run_dispatch(campaign) == 0
    assert states()["+12125550001"] == "completed" and states()["+12125550002"] == "calling"
    api.post(f"Campaign/{campaign['id']}/resume")
    assert run_dispatch(campaign) == 1
    assert len(fake_plivo.calls) == 3


def test_a_claim_dialed_after_a_pause_is_put_back_without_calling(api, running, now, fake_plivo):
    campaign = running(count=1)
    attempt_ids = dispatch.dispatch(campaign["id"], now.at)
    api.post(f"Campaign/{campaign['id']}/pause")
    dialer.dial(attempt_ids[0], now.at)
    assert not fake_plivo.calls
    assert (contact("+12125550001").state, contact("+12125550001").attempts) == ("pending", 0)


def test_a_dial_task_delivered_twice_calls_once(api, running, now, fake_plivo):
    campaign = running(count=1)
    attempt_id = dispatch.dispatch(campaign["id"], now.at)[0]
    dialer.dial(attempt_id, now.at)
    dialer.dial(attempt_id, now.at)
    assert len(fake_plivo.calls) == 1


def test_a_deleted_bot_pauses_the_campaign(api, running, now, bot):
    campaign = running(count=1)
    api.delete(f"Voicebot/{bot['id']}")
    run_dispatch(campaign)
    body = api.get(f"Campaign/{campaign['id']}").json()
    assert body["status"] == "paused" and "voicebot" in body["status_reason"]
    assert api.post(f"Campaign/{campaign['id']}/resume").status_code == 409


# --- Nothing stuck -------------------------------------------------------------------------------------------

def test_a_claim_whose_worker_died_before_dialing_is_taken_back(api, running, now, fake_plivo):
    campaign = running(count=1)
    dispatch.dispatch(campaign["id"], now.at)  # claimed, and the dial task never runs
    assert states()["+12125550001"] == "dialing"
    now.advance(minutes=1)
    tasks.dispatch_due()
    assert states()["+12125550001"] == "dialing"  # within its lease
    now.advance(minutes=2)
    tasks.dispatch_due()  # the sweep puts it back and the dispatch dials it
    assert contact("+12125550001").state == "calling" and contact("+12125550001").attempts == 1
    assert len(fake_plivo.calls) == 1


def test_a_claim_whose_worker_died_while_asking_plivo_is_settled(api, running, now, fake_plivo):
    campaign = running(count=1, max_attempts=1)
    attempt_id = dispatch.dispatch(campaign["id"], now.at)[0]
    Attempt.objects.filter(pk=attempt_id).update(dial_started_at=now.at)  # then the worker was killed
    now.advance(minutes=3)
    tasks.dispatch_due()
    stuck = contact("+12125550001")
    assert (stuck.state, stuck.outcome) == ("failed", "failed") and "dialer stopped" in stuck.last_error


def test_a_call_plivo_took_while_the_worker_died_is_kept(api, running, now, fake_plivo, client):
    campaign = running(count=1)
    attempt = Attempt.objects.get(pk=dispatch.dispatch(campaign["id"], now.at)[0])
    Attempt.objects.filter(pk=attempt.pk).update(dial_started_at=now.at)
    calls.progressed(attempt.call, {"CallUUID": "plivo-call-1", "CallStatus": "ringing"})  # Plivo's ring came
    now.advance(minutes=3)
    tasks.dispatch_due()
    assert contact("+12125550001").state == "calling" and not fake_plivo.calls


def test_a_call_whose_hangup_callback_never_came_is_settled(api, running, now, fake_plivo):
    campaign = running(count=1)
    run_dispatch(campaign)
    call = Call.objects.get()
    calls.finalize(call, reason="The stream closed.")  # the stream ended; Plivo's hangup never arrived
    Call.objects.filter(pk=call.pk).update(ended_at=now.at)
    now.advance(minutes=2)
    tasks.dispatch_due()
    assert contact("+12125550001").state == "completed"


# --- Voicemail -----------------------------------------------------------------------------------------------

def test_with_leave_message_a_machine_hears_the_campaigns_message(api, running, now, fake_plivo, client):
    campaign = running(count=1, machine_detection=True, voicemail_action="leave_message",
                       voicemail_message="Hi {{first_name}}, call us about order {{order}}.")
    run_dispatch(campaign)
    fired = fake_plivo.calls[0]
    assert fired.params["machine_detection"] == "true"
    for kind, params in (("answer", {"CallStatus": "in-progress"}),
                         ("machine_detection", {"Machine": "true", "IfMachine": "continue"})):
        url, payload = fired.params[f"{kind}_url"], fake_plivo.callback_params(fired, **params)
        client.post(urlsplit(url).path, payload, headers=fake_plivo.signature_headers(url, payload))
    transfer = fake_plivo.requests_to("POST", f"/Call/{fired.call_uuid}/")[0]
    url = transfer.body["aleg_url"]
    payload = fake_plivo.callback_params(fired, CallStatus="in-progress")
    xml = client.post(urlsplit(url).path, payload, headers=fake_plivo.signature_headers(url, payload)).content
    assert ElementTree.fromstring(xml).find("Speak").text == "Hi Person1, call us about order 1."
    hang_up(client, fake_plivo, "+12125550001", answered=False)
    assert contact("+12125550001").state == "voicemail"
    assert Call.objects.get().events.filter(kind="voicemail_left").exists()


def test_with_hang_up_plivo_hangs_up_on_machines(api, running, now, fake_plivo):
    campaign = running(count=1, machine_detection=True, voicemail_action="hang_up")
    run_dispatch(campaign)
    assert fake_plivo.calls[0].params["machine_detection"] == "hangup"


# --- Progress ------------------------------------------------------------------------------------------------

def test_progress_counts_dialed_answered_completed_failed_and_remaining(api, running, now, fake_plivo, client):
    campaign = running(count=4, max_concurrent_calls=3, max_attempts=1)
    run_dispatch(campaign)
    hang_up(client, fake_plivo, "+12125550001")
    hang_up(client, fake_plivo, "+12125550002", status="busy", answered=False)
    progress = api.get(f"Campaign/{campaign['id']}").json()["progress"]
    assert progress == {"total": 4, "dialed": 3, "answered": 1, "completed": 1, "voicemail": 0, "failed": 1,
                        "skipped": 0, "remaining": 2, "in_call": 1, "calls_placed": 3}


# --- Two dispatchers at once --------------------------------------------------------------------------------

def test_two_dispatchers_at_once_respect_the_limit_and_never_claim_a_contact_twice(api, bot, now, transactional_db):
    campaign = new_campaign(api, bot, max_concurrent_calls=7)
    upload(api, campaign, contacts_csv(40))
    Campaign.objects.filter(pk=campaign["id"]).update(status=Campaign.Status.RUNNING)
    at = MONDAY_1430
    claimed, errors = [], []
    start = threading.Barrier(2)

    def dispatcher():
        try:
            start.wait()
            for _ in range(5):
                claimed.extend(dispatch.dispatch(campaign["id"], at) or [])  # None: the other one is at work
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(claimed) == 7 == Contact.objects.filter(state="dialing").count()
    assert Attempt.objects.values("contact").distinct().count() == 7


def test_a_contact_locked_by_another_dispatcher_is_skipped_not_waited_for(api, bot, now, transactional_db):
    campaign = new_campaign(api, bot, max_concurrent_calls=1)
    upload(api, campaign, contacts_csv(2))
    Campaign.objects.filter(pk=campaign["id"]).update(status=Campaign.Status.RUNNING)
    first = Contact.objects.order_by("line_number").first()
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        with transaction.atomic():
            Contact.objects.select_for_update().get(pk=first.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(10)
    try:
        attempt_ids = dispatch.dispatch(campaign["id"], MONDAY_1430)
    finally:
        release.set()
        holder.join()
    assert Attempt.objects.get(pk=attempt_ids[0]).contact.line_number == 3


def test_a_dispatch_finding_another_at_work_leaves_it_a_request_instead_of_waiting(api, bot, now, fake_plivo,
                                                                                   transactional_db):
    campaign = new_campaign(api, bot, max_concurrent_calls=1)
    upload(api, campaign, contacts_csv(1))
    Campaign.objects.filter(pk=campaign["id"]).update(status=Campaign.Status.RUNNING)
    locked, release = threading.Event(), threading.Event()

    def another_dispatcher():
        with transaction.atomic():
            Campaign.objects.select_for_update().get(pk=campaign["id"])
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=another_dispatcher)
    holder.start()
    locked.wait(10)
    started = time.monotonic()
    try:
        assert tasks.dispatch_campaign(campaign["id"]) == 0
        assert time.monotonic() - started < 2
        assert cache.get(f"campaigns:dispatch-requested:{campaign['id']}")  # for the one at work to serve
    finally:
        release.set()
        holder.join()
    assert tasks.dispatch_campaign(campaign["id"]) == 1 and len(fake_plivo.calls) == 1


# --- Admin ---------------------------------------------------------------------------------------------------

def test_admin_shows_campaigns_with_progress_bars(api, running, now, fake_plivo, client):
    from voicebots.accounts.services import create_member

    campaign = running(count=2)
    run_dispatch(campaign)
    create_member(api.account, "staffer", "a-long-password-123")
    client.login(username="staffer", password="a-long-password-123")
    listing = client.get("/admin/campaigns/campaign/")
    assert listing.status_code == 200 and b"2 of 2 dialed" in listing.content
    assert client.get(f"/admin/campaigns/campaign/{campaign['id']}/change/").status_code == 200
    assert client.get("/admin/campaigns/campaign/add/").status_code == 200
    assert client.get("/admin/campaigns/contact/").status_code == 200
    page = client.get(f"/admin/campaigns/contact/{contact('+12125550001').pk}/change/")
    assert page.status_code == 200 and b"Attempt 1" in page.content
    response = client.post("/admin/campaigns/campaign/", {"action": "pause", "_selected_action": [campaign["id"]]})
    assert response.status_code == 302 and Campaign.objects.get().status == "paused"


def test_admin_adds_a_campaign_with_contacts_from_csv_and_reports_bad_lines(api, bot, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from voicebots.accounts.services import create_member

    create_member(api.account, "staffer", "a-long-password-123")
    client.login(username="staffer", password="a-long-password-123")
    form = {"name": "From admin", "voicebot": bot["id"], "caller_ids": "+14155550100",
            "starts_at_0": "2025-03-01", "starts_at_1": "00:00", "ends_at_0": "2025-12-31", "ends_at_1": "00:00",
            "timezone": "UTC", "calling_windows_mon": "09:00-17:00", "max_concurrent_calls": 2,
            "max_attempts": 3, "retry_delay_minutes": 60, "retry_on": "busy,no-answer", "ring_timeout": 30,
            "voicemail_action": "hang_up", "voicemail_message": ""}
    bad = client.post("/admin/campaigns/campaign/add/", {
        **form, "contacts_csv": SimpleUploadedFile("c.csv", BAD_ROWS.encode())})
    assert bad.status_code == 200 and b"Line 3:" in bad.content and not Campaign.objects.exists()
    good = client.post("/admin/campaigns/campaign/add/", {
        **form, "contacts_csv": SimpleUploadedFile("c.csv", contacts_csv(3).encode())})
    assert good.status_code == 302, good.content[:3000]
    assert Campaign.objects.get().contacts.count() == 3 and Campaign.objects.get().account == api.account
    assert Campaign.objects.get().calling_windows == {"mon": [["09:00", "17:00"]]}
