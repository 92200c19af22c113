"""Outbound calls through the real plivo SDK against a fake Plivo API, and Plivo's callbacks for them."""
import time
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest

from tests.fakes.plivo_server import CallPlan, FakePlivo
from voicebots.calls import templating
from voicebots.calls.models import Call
from voicebots.providers import plivo_api
from voicebots.telephony.tokens import call_id_from_token

PUBLIC = "https://bots.example.com"
CALLER, CALLEE = "+14155550100", "+14155550199"


@pytest.fixture(autouse=True)
def _fast_plivo_failures(fast_plivo_failures):
    pass




def use_plivo(account, fake):
    account.plivo_auth_id, account.plivo_auth_token = fake.auth_id, fake.auth_token
    account.save()


@pytest.fixture
def bot(api, fake_plivo, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    use_plivo(api.account, fake_plivo)
    return api.post("Voicebot/", {"name": "Orders", "prompt": "You call {{first_name}} about order {{order}}.",
                                  "welcome_message": "Hi {{first_name}}, it's about your order."}).json()


def dial(api, bot, **extra):
    body = {"voicebot_id": bot["id"], "from": CALLER, "to": CALLEE,
            "variables": {"first_name": "Ada", "order": 1042}, **extra}
    return api.post("Call/", body)


def plivo_callback(client, fake, url, **params):
    """POST `url` as Plivo would, signed with the account's Plivo token."""
    return client.post(urlsplit(url).path, params, headers=fake.signature_headers(url, params))


def callback(client, fake, kind, **params):
    fired = fake.calls[-1]
    url = fired.params[f"{kind}_url"]
    return plivo_callback(client, fake, url, **fake.callback_params(fired, **params))


def test_a_call_is_placed_with_plivo_and_answers_201_with_its_ids(api, bot, fake_plivo):
    response = dial(api, bot)
    assert response.status_code == 201, response.content
    body = response.json()
    fired = fake_plivo.calls[0]
    assert body["request_uuid"] == fired.request_uuid and body["message"] == "call fired"
    assert body["status"] == "queued" and body["direction"] == "outbound"
    assert (body["from"], body["to"], body["voicebot_id"]) == (CALLER, CALLEE, bot["id"])
    sent = fired.params
    base = f"{PUBLIC}/v1/Account/{api.account.auth_id}/Call/{body['id']}"
    assert (sent["from"], sent["to"]) == ("14155550100", "14155550199")
    assert (sent["answer_url"], sent["hangup_url"], sent["ring_url"]) == (f"{base}/answer", f"{base}/hangup",
                                                                          f"{base}/ring")
    assert sent["answer_method"] == sent["hangup_method"] == "POST"
    assert sent["ring_timeout"] == 30 and sent["time_limit"] == 1800
    assert "machine_detection" not in sent
    request = fake_plivo.requests_to("POST", "/Call/")[0]
    assert request.authorized and request.path == f"/v1/Account/{fake_plivo.auth_id}/Call/"
    assert api.get(f"Call/{body['id']}/").json()["request_uuid"] == fired.request_uuid


def test_variables_fill_the_prompt_and_welcome_message_of_the_call(api, bot):
    call = Call.objects.get(pk=dial(api, bot).json()["id"])
    assert call.variables == {"first_name": "Ada", "order": "1042"}
    personal = templating.personalized(call.voicebot, call.variables)
    assert personal.prompt == "You call Ada about order 1042."
    assert personal.welcome_message == "Hi Ada, it's about your order."
    assert call.voicebot.prompt.startswith("You call {{first_name}}")  # the bot itself is untouched


def test_a_placeholder_without_a_value_is_a_400_naming_it(api, bot, fake_plivo):
    response = dial(api, bot, variables={"first_name": "Ada", "unused": "x"})
    assert response.status_code == 400
    assert "{{order}}" in response.json()["details"]["variables"][0]
    assert dial(api, bot, variables={"first_name": "  ", "order": 1}).status_code == 400
    assert not fake_plivo.calls and not Call.objects.exists()


@pytest.mark.parametrize("change, field", [
    ({"to": "4155550199"}, "to"), ({"from": "+1 (415) 555-0100"}, "from"), ({"to": CALLER}, "to"),
    ({"voicebot_id": "00000000-0000-4000-8000-000000000000"}, "voicebot_id"), ({"colour": "red"}, "colour"),
    ({"ring_timeout": 500}, "ring_timeout"), ({"machine_detection": "maybe"}, "machine_detection"),
    ({"voicemail_message": "Call us back."}, "voicemail_message"), ({"variables": {"a b": "x"}}, "variables"),
])
def test_bad_parameters_are_400s_and_dial_nothing(api, bot, fake_plivo, change, field):
    response = dial(api, bot, **change)
    assert response.status_code == 400, response.content
    assert field in response.json()["details"]
    assert not fake_plivo.calls


def test_a_number_that_is_not_e164_says_how_to_write_it(api, bot):
    error = dial(api, bot, to="4155550199").json()["details"]["to"][0]
    assert "+4155550199" in error


def test_another_accounts_bot_is_a_400(api, other_api, bot):
    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    response = dial(api, theirs, variables={})
    assert response.status_code == 400 and "voicebot_id" in response.json()["details"]


def test_status_follows_plivo_callbacks_and_the_answer_streams_to_the_bot(api, bot, fake_plivo, client):
    call_id = dial(api, bot).json()["id"]
    assert callback(client, fake_plivo, "ring", CallStatus="ringing").status_code == 204
    assert Call.objects.get(pk=call_id).status == "ringing"

    answer = callback(client, fake_plivo, "answer", CallStatus="in-progress")
    assert answer.status_code == 200 and answer["Content-Type"] == "application/xml"
    stream = ElementTree.fromstring(answer.content).find("Stream")
    assert stream.get("bidirectional") == "true" and stream.get("keepCallAlive") == "true"
    socket = urlsplit(stream.text)
    assert socket.scheme == "wss" and socket.path.endswith(f"/Voicebot/{bot['id']}/connect")
    assert call_id_from_token(parse_qs(socket.query)["token"][0], max_age_s=60) == call_id
    call = Call.objects.get(pk=call_id)
    assert call.status == "in-progress" and call.answered_at is not None
    assert call.call_uuid == fake_plivo.calls[0].call_uuid

    callback(client, fake_plivo, "ring", CallStatus="ringing")  # late and out of order: ignored
    assert Call.objects.get(pk=call_id).status == "in-progress"

    hangup = callback(client, fake_plivo, "hangup", CallStatus="completed", HangupCause="NORMAL_CLEARING",
                      HangupCauseName="Normal Hangup", Duration="42", BillDuration="42")
    assert hangup.status_code == 204
    call = Call.objects.get(pk=call_id)
    assert (call.status, call.duration_seconds, call.hangup_cause) == ("completed", 42, "Normal Hangup")
    assert call.ended_at is not None
    # An answer request for a call that is over hangs up.
    again = callback(client, fake_plivo, "answer", CallStatus="in-progress")
    assert ElementTree.fromstring(again.content).find("Hangup") is not None


@pytest.mark.parametrize("plivo_status, ours", [("busy", "busy"), ("no-answer", "no-answer"),
                                                ("timeout", "no-answer"), ("failed", "failed"),
                                                ("cancel", "canceled")])
def test_unanswered_calls_end_with_plivos_status(api, bot, fake_plivo, client, plivo_status, ours):
    call_id = dial(api, bot).json()["id"]
    callback(client, fake_plivo, "ring", CallStatus="ringing")
    callback(client, fake_plivo, "hangup", CallStatus=plivo_status, HangupCause="X", Duration="0")
    call = Call.objects.get(pk=call_id)
    assert call.status == ours and call.has_ended and call.answered_at is None


def test_callbacks_must_be_signed_and_belong_to_the_account(api, other_api, bot, fake_plivo, client):
    call_id = dial(api, bot).json()["id"]
    fired = fake_plivo.calls[0]
    path = urlsplit(fired.params["hangup_url"]).path
    assert client.post(path, fake_plivo.callback_params(fired, CallStatus="completed")).status_code == 403
    wrong_token = FakePlivo(auth_id=fake_plivo.auth_id)  # same account, another token
    assert plivo_callback(client, wrong_token, fired.params["hangup_url"], CallStatus="completed").status_code == 403
    other_path = path.replace(api.account.auth_id, other_api.account.auth_id)
    assert client.post(other_path, {"CallStatus": "completed"}).status_code == 404
    assert Call.objects.get(pk=call_id).status == "queued"


def test_a_second_plivo_leg_for_the_same_call_is_hung_up(api, bot, fake_plivo, client):
    call_id = dial(api, bot).json()["id"]
    callback(client, fake_plivo, "answer", CallStatus="in-progress")
    fired = fake_plivo.calls[0]
    other_leg = {**fake_plivo.callback_params(fired, CallStatus="in-progress"), "CallUUID": "another-leg"}
    answer = plivo_callback(client, fake_plivo, fired.params["answer_url"], **other_leg)
    assert ElementTree.fromstring(answer.content).find("Hangup") is not None
    assert Call.objects.get(pk=call_id).call_uuid == fired.call_uuid


def test_voicemail_a_machine_hears_the_message_after_the_beep(api, bot, fake_plivo, client):
    call_id = dial(api, bot, machine_detection=True,
                   voicemail_message="Hello {{first_name}}, please call us back about {{order}}.").json()["id"]
    fired = fake_plivo.calls[0]
    assert fired.params["machine_detection"] == "true"
    assert fired.params["machine_detection_url"].endswith(f"/Call/{call_id}/machine")
    callback(client, fake_plivo, "answer", CallStatus="in-progress")
    detected = callback(client, fake_plivo, "machine_detection", CallStatus="in-progress", Event="MachineDetection",
                        Machine="true", IfMachine="continue")
    assert detected.status_code == 204
    transfer = fake_plivo.requests_to("POST", f"/Call/{fired.call_uuid}/")[0]
    assert transfer.body["legs"] == "aleg" and transfer.body["aleg_url"].endswith(f"/Call/{call_id}/voicemail")
    message = plivo_callback(client, fake_plivo, transfer.body["aleg_url"],
                             **fake_plivo.callback_params(fired, CallStatus="in-progress"))
    verbs = ElementTree.fromstring(message.content)
    assert [v.tag for v in verbs] == ["Wait", "Speak", "Hangup"] and verbs[0].get("beep") == "true"
    assert verbs[1].text == "Hello Ada, please call us back about 1042."
    callback(client, fake_plivo, "hangup", CallStatus="completed", HangupCause="NORMAL_CLEARING", Duration="20")
    call = Call.objects.get(pk=call_id)
    assert call.status == "voicemail"
    kinds = list(call.events.values_list("kind", flat=True))
    assert "machine_detection" in kinds and "voicemail_left" in kinds


def test_voicemail_hangup_mode_lets_plivo_hang_up_and_records_it(api, bot, fake_plivo, client):
    call_id = dial(api, bot, machine_detection="hangup").json()["id"]
    assert fake_plivo.calls[0].params["machine_detection"] == "hangup"
    callback(client, fake_plivo, "answer", CallStatus="in-progress")
    callback(client, fake_plivo, "machine_detection", CallStatus="in-progress", Machine="true", IfMachine="hangup")
    callback(client, fake_plivo, "hangup", CallStatus="completed", HangupCause="NORMAL_CLEARING", Machine="true")
    assert Call.objects.get(pk=call_id).status == "voicemail"
    assert not fake_plivo.requests_to("POST", f"/Call/{fake_plivo.calls[0].call_uuid}/")  # no transfer


def test_a_person_answering_with_detection_on_talks_to_the_bot(api, bot, fake_plivo, client):
    call_id = dial(api, bot, machine_detection=True, voicemail_message="Bye.").json()["id"]
    answer = callback(client, fake_plivo, "answer", CallStatus="in-progress")
    assert ElementTree.fromstring(answer.content).find("Stream") is not None
    callback(client, fake_plivo, "machine_detection", Machine="false", IfMachine="continue")
    callback(client, fake_plivo, "hangup", CallStatus="completed", Duration="30")
    assert Call.objects.get(pk=call_id).status == "completed"


def test_delete_hangs_up_a_live_call(api, bot, fake_plivo, client):
    call_id = dial(api, bot).json()["id"]
    callback(client, fake_plivo, "answer", CallStatus="in-progress")
    assert api.delete(f"Call/{call_id}/").status_code == 204
    fired = fake_plivo.calls[0]
    assert fake_plivo.requests_to("DELETE", f"/Call/{fired.call_uuid}/")
    assert not fired.live
    callback(client, fake_plivo, "hangup", CallStatus="completed", HangupCause="NORMAL_CLEARING", Duration="3")
    assert Call.objects.get(pk=call_id).status == "completed"
    response = api.delete(f"Call/{call_id}")
    assert response.status_code == 409 and "already ended" in response.json()["error"]


def test_delete_before_the_answer_cancels_the_request(api, bot, fake_plivo):
    call_id = dial(api, bot).json()["id"]
    assert api.delete(f"Call/{call_id}/").status_code == 204
    assert fake_plivo.requests_to("DELETE", f"/Request/{fake_plivo.calls[0].request_uuid}/")


def test_delete_of_another_accounts_call_is_a_404(api, other_api, bot):
    call_id = dial(api, bot).json()["id"]
    assert other_api.delete(f"Call/{call_id}/").status_code == 404
    assert api.delete("Call/not-a-uuid/").status_code == 404


def test_plivo_5xx_is_retried(api, bot, fake_plivo):
    fake_plivo.fail_next(503, times=2, path="/Call/")
    response = dial(api, bot)
    assert response.status_code == 201
    assert len(fake_plivo.requests_to("POST", "/Call/")) == 3


def test_plivo_5xx_after_retries_is_a_502_and_the_call_is_marked_failed(api, bot, fake_plivo):
    fake_plivo.fail_next(500, times=10, path="/Call/")
    response = dial(api, bot)
    assert response.status_code == 502
    assert "Plivo is unavailable" in response.json()["error"]
    assert len(fake_plivo.requests_to("POST", "/Call/")) == plivo_api.RETRY_ATTEMPTS
    call = Call.objects.get()
    assert call.status == "failed" and "did not place" in call.end_reason


def test_a_plivo_timeout_is_retried_then_reported(api, bot, fake_plivo):
    fake_plivo.stall_next(1.0, times=10, path="/Call/")
    started = time.monotonic()
    response = dial(api, bot)
    assert response.status_code == 502 and "did not answer" in response.json()["error"]
    assert time.monotonic() - started < 5


def test_missing_or_refused_plivo_credentials_are_clear_409s(api, bot, fake_plivo):
    api.account.plivo_auth_token = "not-the-token"
    api.account.save()
    response = dial(api, bot)
    assert response.status_code == 409 and "Plivo credentials" in response.json()["error"]
    api.account.plivo_auth_id = api.account.plivo_auth_token = ""
    api.account.save()
    response = dial(api, bot)
    assert response.status_code == 409 and "Plivo auth id" in response.json()["error"]
    assert Call.objects.filter(status="queued").count() == 0


def test_a_call_played_end_to_end_by_the_fake(api, bot, fake_plivo, live_server, settings):
    """The fake plays Plivo's whole part over HTTP: ring, answer (our XML), hangup, all signed."""
    settings.PUBLIC_BASE_URL = live_server.url
    fake_plivo.plan = CallPlan(outcome="human", talk_s=0.2)
    call_id = dial(api, bot).json()["id"]
    deadline = time.monotonic() + 10
    fired = fake_plivo.calls[0]
    # The fake notes a callback once our answer to it arrives, which may be after the status is written.
    while not (Call.objects.get(pk=call_id).status == "completed" and len(fired.callbacks) == 3) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Call.objects.get(pk=call_id).status == "completed", fake_plivo.callback_errors
    assert [kind for kind, *_ in fired.callbacks] == ["ring", "answer", "hangup"]
    assert all(status < 300 for _, status, *_ in fired.callbacks) and "<Stream" in fired.answer_xml


def test_a_machine_played_end_to_end_by_the_fake_gets_the_voicemail(api, bot, fake_plivo, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    fake_plivo.plan = CallPlan(outcome="machine", detect_s=0.1, talk_s=5)
    call_id = dial(api, bot, machine_detection=True, voicemail_message="Call back, {{first_name}}.").json()["id"]
    deadline = time.monotonic() + 10
    fired = fake_plivo.calls[0]
    while not (Call.objects.get(pk=call_id).status == "voicemail" and len(fired.callbacks) == 5) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Call.objects.get(pk=call_id).status == "voicemail", fake_plivo.callback_errors
    assert [kind for kind, *_ in fired.callbacks] == ["ring", "answer", "machine", "transfer", "hangup"]
    url, xml = fired.transfers[0]
    assert url.endswith(f"/Call/{call_id}/voicemail") and "<Speak>Call back, Ada.</Speak>" in xml
