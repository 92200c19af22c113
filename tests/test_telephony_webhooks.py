"""Plivo's answer, hangup and stream-status requests, signed as Plivo signs them."""
import secrets
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest

from voicebots.calls.models import Call
from voicebots.providers.plivo_api import sign_like_plivo
from voicebots.telephony.tokens import call_id_from_token

PLIVO_TOKEN = "plivo-auth-token-for-tests"


@pytest.fixture
def bot(api, settings):
    settings.PUBLIC_BASE_URL = "https://bots.example.com"
    api.account.plivo_auth_id = "MAPLIVOACCOUNT000001"
    api.account.plivo_auth_token = PLIVO_TOKEN
    api.account.save()
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello!"}).json()


def plivo_post(client, path, params, token=PLIVO_TOKEN, nonce=None):
    nonce = nonce or secrets.token_hex(10)  # Plivo signs every request with a fresh nonce
    url = "https://bots.example.com" + path
    signature = sign_like_plivo(url=url, params={k: [v] for k, v in params.items()}, auth_token=token, nonce=nonce)
    return client.post(path, params, HTTP_X_PLIVO_SIGNATURE_V3=signature, HTTP_X_PLIVO_SIGNATURE_V3_NONCE=nonce)


ANSWER = {"CallUUID": "c0ffee00-0000-4000-8000-000000000001", "From": "14155550100", "To": "14155550199",
          "Direction": "inbound", "CallStatus": "in-progress", "BillRate": "0.0085"}


def answer_path(api, bot):
    return f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/inbound_call"


def test_inbound_call_answers_with_a_bidirectional_stream(api, bot, client, settings):
    response = plivo_post(client, answer_path(api, bot), ANSWER)
    assert response.status_code == 200 and response["Content-Type"] == "application/xml"
    stream = ElementTree.fromstring(response.content).find("Stream")
    assert stream.get("bidirectional") == "true" and stream.get("keepCallAlive") == "true"
    assert stream.get("contentType") == "audio/x-mulaw;rate=8000"
    assert stream.get("statusCallbackUrl").endswith(f"/Voicebot/{bot['id']}/stream_status")
    socket_url = urlsplit(stream.text)
    assert socket_url.scheme == "wss" and socket_url.netloc == "bots.example.com"
    assert socket_url.path == f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/connect"
    call = Call.objects.get(call_uuid=ANSWER["CallUUID"])
    token = parse_qs(socket_url.query)["token"][0]
    assert call_id_from_token(token, max_age_s=60) == str(call.id)
    assert (call.direction, call.status, call.from_number, call.to_number) == \
        ("inbound", "in-progress", "14155550100", "14155550199")
    # Plivo retrying the answer URL does not create a second record.
    plivo_post(client, answer_path(api, bot), ANSWER)
    assert Call.objects.filter(call_uuid=ANSWER["CallUUID"]).count() == 1


@pytest.mark.parametrize("tamper", ["wrong-token", "no-headers", "changed-param"])
def test_a_bad_signature_is_a_403_and_creates_nothing(api, bot, client, tamper):
    if tamper == "wrong-token":
        response = plivo_post(client, answer_path(api, bot), ANSWER, token="not-the-token")
    elif tamper == "no-headers":
        response = client.post(answer_path(api, bot), ANSWER)
    else:
        url = "https://bots.example.com" + answer_path(api, bot)
        signature = sign_like_plivo(url=url, params={k: [v] for k, v in ANSWER.items()}, auth_token=PLIVO_TOKEN,
                                    nonce="n1")
        response = client.post(answer_path(api, bot), {**ANSWER, "From": "19995550000"},
                               HTTP_X_PLIVO_SIGNATURE_V3=signature, HTTP_X_PLIVO_SIGNATURE_V3_NONCE="n1")
    assert response.status_code == 403
    assert "signature" in response.json()["error"]
    assert not Call.objects.exists()


def test_signature_checks_can_be_relaxed_for_local_development(api, bot, client, settings):
    settings.PLIVO_VERIFY_SIGNATURES = False
    assert client.post(answer_path(api, bot), ANSWER).status_code == 200


def test_answer_for_an_unknown_bot_or_another_account_is_a_404(api, other_api, bot, client):
    assert client.post(f"/v1/Account/{api.account.auth_id}/Voicebot/nope/inbound_call", ANSWER).status_code == 404
    path = f"/v1/Account/{other_api.account.auth_id}/Voicebot/{bot['id']}/inbound_call"
    assert plivo_post(client, path, ANSWER).status_code == 404


def test_hangup_callback_finalizes_the_record(api, bot, client):
    plivo_post(client, answer_path(api, bot), ANSWER)
    hangup = {**ANSWER, "CallStatus": "completed", "HangupCause": "NORMAL_CLEARING", "Duration": "42",
              "BillDuration": "60"}
    response = plivo_post(client, f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/hangup/", hangup)
    assert response.status_code == 204
    call = Call.objects.get()
    assert call.status == "completed" and call.duration_seconds == 42 and call.hangup_cause == "NORMAL_CLEARING"
    assert call.ended_at is not None and "NORMAL_CLEARING" in call.end_reason
    listed = api.get("Call/").json()
    assert listed["calls"][0]["id"] == str(call.id) and listed["calls"][0]["from"] == "14155550100"
    detail = api.get(f"Call/{call.id}/").json()
    assert detail["status"] == "completed" and detail["turns"] == [] and detail["duration_seconds"] == 42


def test_stream_status_callback_is_recorded_as_an_event(api, bot, client):
    plivo_post(client, answer_path(api, bot), ANSWER)
    path = f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/stream_status"
    assert plivo_post(client, path, {"CallUUID": ANSWER["CallUUID"], "Event": "DroppedStream",
                                     "StreamID": "s-1"}).status_code == 204
    call = Call.objects.get()
    assert call.events.get().kind == "stream.DroppedStream"


def test_calls_of_another_account_are_404(api, other_api, bot, client):
    plivo_post(client, answer_path(api, bot), ANSWER)
    call = Call.objects.get()
    assert other_api.get(f"Call/{call.id}/").status_code == 404
    assert other_api.get("Call/").json()["calls"] == []
