"""The console's pages over the Django test client: who sees what, the call list's filters, the overview's
figures (rolled up and live), and a call's inspector with its audio and waveform."""
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tests.test_recordings import recorded_call
from voicebots.accounts.models import Membership
from voicebots.accounts.services import create_member
from voicebots.bots.models import Voicebot
from voicebots.calls.models import Call, CallEvent, CallTurn
from voicebots.console import stats, tasks
from voicebots.console.models import HourlyCallStats

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(client, api):
    user = create_member(api.account, "ada", "a-long-password-1")
    client.force_login(user)
    return user


def turn(call, index, caller, bot, latency=None, tools=(), at=None, **timings):
    return CallTurn.objects.create(
        call=call, index=index, caller_text=caller, bot_text=bot, tool_calls=list(tools),
        timings={"latency_ms": latency, **timings} if latency is not None else {},
        speech_ended_at=at)


def a_call(account, bot, *, minutes_ago=10, status=Call.Status.COMPLETED, direction="inbound", seconds=60,
           reason="The caller hung up."):
    call = Call.objects.create(account=account, voicebot=bot, status=status, direction=direction,
                               duration_seconds=seconds, end_reason=reason,
                               answered_at=timezone.now() if status == Call.Status.COMPLETED else None)
    Call.objects.filter(pk=call.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    call.refresh_from_db()
    return call


def test_the_console_needs_a_login_and_shows_only_the_users_accounts(client, api, other_api):
    assert client.get("/console/").status_code == 302
    user = create_member(api.account, "ada", "a-long-password-1")
    client.force_login(user)
    response = client.get("/console/")
    assert response.status_code == 302 and response["Location"] == f"/console/{api.account.auth_id}/"
    assert client.get(f"/console/{api.account.auth_id}/").status_code == 200
    other_call = a_call(other_api.account, None)
    assert client.get(f"/console/{other_api.account.auth_id}/").status_code == 404
    assert client.get(f"/console/{other_api.account.auth_id}/calls/").status_code == 404
    assert client.get(f"/console/{api.account.auth_id}/calls/{other_call.id}/").status_code == 404
    assert client.get(f"/console/{other_api.account.auth_id}/calls/{other_call.id}/audio").status_code == 404

    Membership.objects.create(user=user, account=other_api.account)  # a second account: a switcher appears
    page = client.get(f"/console/{other_api.account.auth_id}/calls/").content.decode()
    assert "data-account-select" in page and str(other_call.id) in page


def test_superusers_see_every_account_but_staff_alone_sees_none(client, api):
    staff = get_user_model().objects.create_user("staffer", password="x-long-password", is_staff=True)
    client.force_login(staff)
    assert client.get("/console/").status_code == 403
    assert client.get(f"/console/{api.account.auth_id}/").status_code == 404
    root = get_user_model().objects.create_superuser("root", password="x-long-password")
    client.force_login(root)
    assert client.get(f"/console/{api.account.auth_id}/").status_code == 200


def test_the_call_list_filters_by_bot_direction_status_dates_and_transcript(client, api, member):
    front, sales = (Voicebot.objects.create(account=api.account, name=name) for name in ("Front", "Sales"))
    parking = a_call(api.account, front, minutes_ago=5)
    turn(parking, 1, "Where can I park my car?", "Behind the building.", 600)
    outbound = a_call(api.account, sales, minutes_ago=60 * 24 * 3, direction="outbound", status=Call.Status.FAILED)
    turn(outbound, 1, "Who is this?", "Smile Dental calling about your visit.", 700)
    base = f"/console/{api.account.auth_id}/calls/"

    def shown(**query):
        page = client.get(base, query).content.decode()
        return {call.id for call in (parking, outbound) if str(call.id) in page}

    assert shown() == {parking.id, outbound.id}
    assert shown(bot=str(sales.id)) == {outbound.id}
    assert shown(direction="outbound") == {outbound.id}
    assert shown(status="completed") == {parking.id}
    assert shown(since=(timezone.now() - timedelta(days=1)).date().isoformat()) == {parking.id}
    assert shown(until=(timezone.now() - timedelta(days=2)).date().isoformat()) == {outbound.id}
    assert shown(text="park") == {parking.id} and shown(text="park my car") == {parking.id}
    assert shown(text="parking") == set()  # whole words
    assert shown(text="dental") == {outbound.id}
    bad = client.get(base, {"since": "2026-13-40", "status": "weird", "page": "0"})
    assert bad.status_code == 200 and b"Enter a valid date" in bad.content and b"role=\"alert\"" in bad.content


def test_the_call_list_pages(client, api, member):
    bot = Voicebot.objects.create(account=api.account, name="Busy")
    calls = [a_call(api.account, bot, minutes_ago=minute) for minute in range(30)]
    first = client.get(f"/console/{api.account.auth_id}/calls/").content.decode()
    second = client.get(f"/console/{api.account.auth_id}/calls/", {"page": 2}).content.decode()
    assert str(calls[0].id) in first and str(calls[29].id) not in first and "older" in first
    assert str(calls[29].id) in second and str(calls[0].id) not in second and "newer" in second


def test_the_overview_counts_calls_turns_and_latency_rolled_up_and_live(client, api, member):
    bot = Voicebot.objects.create(account=api.account, name="Front")
    other = Voicebot.objects.create(account=api.account, name="Other")
    old = a_call(api.account, bot, minutes_ago=60 * 26, seconds=120)
    turn(old, 1, "Hi", "Hello", 500, stt_ms=100, llm_ms=300, tts_ms=80, platform_ms=20,
         tools=[{"name": "book", "is_error": True}, {"name": "book", "is_error": False}])
    turn(old, 2, "Thanks", "Bye", 900, stt_ms=200, llm_ms=500, tts_ms=100, platform_ms=100)
    a_call(api.account, other, minutes_ago=60 * 30, status=Call.Status.VOICEMAIL, seconds=30,
           reason="An answering machine picked up.")
    assert tasks.refresh_stats.delay().get() == 2  # two (bot, hour) rows
    assert HourlyCallStats.objects.filter(account=api.account).count() == 2
    # After the refresh: counted live. (Made now: backdated, it could fall before the refresh's hour, which a
    # call made after the refresh never does, and the test would fail in the first minute of an hour.)
    fresh = a_call(api.account, bot, minutes_ago=0, status=Call.Status.FAILED, seconds=0,
                   reason="The call's audio stream closed.")
    turn(fresh, 1, "Hello?", "Hi!", 1500, stt_ms=300, llm_ms=900, tts_ms=200, platform_ms=100)

    summary = stats.overview(api.account, start=timezone.now() - timedelta(days=7),
                             end=timezone.now() + timedelta(hours=1))
    total = summary.total.counts
    assert (total["calls"], total["voicemail"], total["failed"], total["seconds"]) == (3, 1, 1, 150)
    assert (total["turns"], total["replies"], total["tool_calls"], total["tool_errors"]) == (3, 3, 2, 1)
    assert summary.total.percentile(0.5) == 910  # the 900 ms reply's 20 ms bucket
    assert summary.total.percentile(0.95) == 1510
    assert summary.total.mean("llm") == pytest.approx((300 + 500 + 900) / 3)
    assert dict(summary.end_reasons) == {"The caller hung up.": 1, "An answering machine picked up.": 1,
                                         "The call's audio stream closed.": 1}
    only_front = stats.overview(api.account, start=timezone.now() - timedelta(days=7),
                                end=timezone.now() + timedelta(hours=1), voicebot_id=bot.id)
    assert only_front.total.counts["calls"] == 2

    page = client.get(f"/console/{api.account.auth_id}/", {"period": "7d"}).content.decode()
    assert 'data-total="calls">3<' in page and "overview-charts" in page and "An answering machine" in page
    assert client.get(f"/console/{api.account.auth_id}/", {"period": "nonsense", "bot": "x"}).status_code == 200

    # A call that changes after it was rolled up is counted anew at the next refresh.
    Call.objects.filter(pk=old.pk).update(status=Call.Status.FAILED, updated_at=timezone.now())
    tasks.refresh_stats.delay()
    again = stats.overview(api.account, start=timezone.now() - timedelta(days=7), end=timezone.now())
    assert again.total.counts["failed"] == 2 and again.total.counts["calls"] == 3


def test_a_calls_page_shows_turns_latency_tools_passages_events_and_plays_its_recording(client, api, member):
    call = recorded_call(api.account, seconds=4.0)
    started = call.recording.started_at
    turn(call, 0, "", "Hello, Smile Dental!", at=started)
    turn(call, 1, "Can I book for Monday?", "You are booked.", 1800, stt_ms=150, llm_ms=1400, tts_ms=90,
         platform_ms=160, at=started + timedelta(seconds=2.5),
         tools=[{"name": "book_visit", "input": {"day": "Monday"}, "result": '{"booked": true}', "is_error": False}])
    CallTurn.objects.filter(call=call, index=1).update(passages=[{"name": "faq.md", "text": "Open Mondays.",
                                                                  "page": None, "score": 0.5}])
    turn(call, 2, "Thanks", "Bye", 600, stt_ms=150, llm_ms=300, tts_ms=90, platform_ms=60,
         at=started + timedelta(seconds=3.5))
    CallEvent.objects.create(call=call, kind="dtmf", detail={"digit": "5"})
    Call.objects.filter(pk=call.pk).update(analysis={"status": "done", "summary": "The caller booked Monday.",
                                                     "success": True, "data": {"day": "Monday"}})

    page = client.get(f"/console/{api.account.auth_id}/calls/{call.id}/").content.decode()
    for expected in ("Can I book for Monday?", "book_visit", "Open Mondays.", "dtmf", "The caller booked Monday.",
                     "slowest", "1800 ms", "LLM 1400", 'id="audio"'):
        assert expected in page, expected
    assert 'data-seek="0.00"' in page  # the greeting plays from the start
    assert 'data-seek="2.' in page or 'data-seek="1.' in page

    audio = client.get(f"/console/{api.account.auth_id}/calls/{call.id}/audio", HTTP_RANGE="bytes=0-99")
    assert audio.status_code == 206 and len(b"".join(audio.streaming_content)) == 100
    peaks = client.get(f"/console/{api.account.auth_id}/calls/{call.id}/peaks")
    assert peaks.status_code == 200 and len(peaks.content) == 2 * 80  # 4 s at 20 buckets a second, 2 channels
    assert max(peaks.content[0::2]) > 50 and max(peaks.content[1::2]) > 50


def test_a_call_without_a_recording_still_shows_its_transcript(client, api, member):
    call = a_call(api.account, None)
    turn(call, 1, "Hello?", "Hi there.", 700)
    page = client.get(f"/console/{api.account.auth_id}/calls/{call.id}/")
    assert page.status_code == 200 and b"not recorded" in page.content and b"Hi there." in page.content
    assert client.get(f"/console/{api.account.auth_id}/calls/{call.id}/audio").status_code == 404
    assert client.get(f"/console/{api.account.auth_id}/calls/not-a-uuid/").status_code == 404


def test_the_home_page_and_the_admins_call_page_link_to_the_console(client, api, member):
    call = a_call(api.account, None)
    assert b'href="/console/"' in client.get("/").content
    admin_page = client.get(f"/admin/calls/call/{call.id}/change/").content.decode()
    assert f"/console/{api.account.auth_id}/calls/{call.id}/" in admin_page
