"""Replayed Plivo requests are refused, and a live call carries exactly one audio stream."""
import json
import secrets
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from config.asgi import application
from voicebots.calls.models import Call, CallEvent
from voicebots.providers.plivo_api import sign_like_plivo

PLIVO_TOKEN = "plivo-auth-token-for-replays"
PUBLIC = "https://bots.example.com"
ANSWER = {"CallUUID": "c0ffee00-0000-4000-8000-00000000beef", "From": "14155550100", "To": "14155550199",
          "Direction": "inbound", "CallStatus": "in-progress"}


@pytest.fixture
def bot(api, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.PLIVO_VERIFY_SIGNATURES = True
    api.account.plivo_auth_id = "MAPLIVOACCOUNT000001"
    api.account.plivo_auth_token = PLIVO_TOKEN
    api.account.save()
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello!"}).json()


def signed_post(client, path, params, nonce):
    signature = sign_like_plivo(url=PUBLIC + path, params={k: [v] for k, v in params.items()},
                                auth_token=PLIVO_TOKEN, nonce=nonce)
    return client.post(path, params, HTTP_X_PLIVO_SIGNATURE_V3=signature, HTTP_X_PLIVO_SIGNATURE_V3_NONCE=nonce)


def bot_path(api, bot, what):
    return f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/{what}"


def stream_path(response) -> str:
    url = urlsplit(ElementTree.fromstring(response.content).find("Stream").text)
    return f"{url.path}?{url.query}"


def test_a_replayed_answer_request_is_refused(api, bot, client):
    nonce = secrets.token_hex(10)
    first = signed_post(client, bot_path(api, bot, "inbound_call"), ANSWER, nonce)
    assert first.status_code == 200
    replay = signed_post(client, bot_path(api, bot, "inbound_call"), ANSWER, nonce)
    assert replay.status_code == 403
    assert "already" in replay.json()["error"] and b"token=" not in replay.content
    # Plivo's own retry is a new request with a new nonce: still answered.
    assert signed_post(client, bot_path(api, bot, "inbound_call"), ANSWER, secrets.token_hex(10)).status_code == 200


@pytest.mark.parametrize("webhook", ["hangup", "stream_status"])
def test_other_plivo_callbacks_refuse_replays_too(api, bot, client, webhook):
    signed_post(client, bot_path(api, bot, "inbound_call"), ANSWER, secrets.token_hex(10))
    params = {**ANSWER, "Event": "StartStream", "CallStatus": "completed"}
    nonce = secrets.token_hex(10)
    assert signed_post(client, bot_path(api, bot, webhook), params, nonce).status_code == 204
    assert signed_post(client, bot_path(api, bot, webhook), params, nonce).status_code == 403


def test_a_request_with_a_bad_signature_does_not_use_up_its_nonce(api, bot, client):
    nonce = secrets.token_hex(10)
    path = bot_path(api, bot, "inbound_call")
    forged = client.post(path, ANSWER, HTTP_X_PLIVO_SIGNATURE_V3="Zm9yZ2Vk", HTTP_X_PLIVO_SIGNATURE_V3_NONCE=nonce)
    assert forged.status_code == 403
    assert signed_post(client, path, ANSWER, nonce).status_code == 200


def start_frame(call_uuid: str, stream_id: str) -> dict:
    return {"event": "start", "sequenceNumber": 1,
            "start": {"callId": call_uuid, "streamId": stream_id, "accountId": "MA00000000000000TEST",
                      "tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}}}


@pytest.mark.django_db(transaction=True)
class TestOneStreamPerCall:
    @pytest.fixture(autouse=True)
    async def _close_consumer_connections(self):
        yield
        await sync_to_async(connections.close_all)()

    async def _live_call(self, client, api, bot):
        """A call whose first stream is connected and hearing the bot (the apology: no provider keys)."""
        answer = await sync_to_async(signed_post)(client, bot_path(api, bot, "inbound_call"), ANSWER,
                                                  secrets.token_hex(10))
        path = stream_path(answer)
        first = WebsocketCommunicator(application, path)
        assert (await first.connect())[0]
        await first.send_json_to(start_frame(ANSWER["CallUUID"], "stream-1"))
        assert json.loads(await first.receive_from(timeout=5))["event"] == "playAudio"
        return first, path

    async def _assert_refused_and_recorded(self, first, second):
        connected, _ = await second.connect()
        if connected:  # refused at the start frame at the latest, never given audio
            await second.send_json_to(start_frame(ANSWER["CallUUID"], "stream-2"))
            assert (await second.receive_output(timeout=5))["type"] == "websocket.close"
        call = await Call.objects.aget(call_uuid=ANSWER["CallUUID"])
        assert call.stream_id == "stream-1" and not call.has_ended
        assert await CallEvent.objects.filter(call=call, kind="second_stream_refused").aexists()
        # The first stream is untouched: the bot is still talking to the caller.
        assert json.loads(await first.receive_from(timeout=5))["event"] in ("playAudio", "checkpoint")
        await first.disconnect()

    async def test_the_same_token_cannot_attach_a_second_stream(self, client, api, bot, settings):
        settings.ANTHROPIC_API_KEY = ""
        first, path = await self._live_call(client, api, bot)
        await self._assert_refused_and_recorded(first, WebsocketCommunicator(application, path))

    async def test_a_fresh_answer_for_a_live_call_cannot_attach_a_second_stream(self, client, api, bot, settings):
        settings.ANTHROPIC_API_KEY = ""
        first, _ = await self._live_call(client, api, bot)
        again = await sync_to_async(signed_post)(client, bot_path(api, bot, "inbound_call"), ANSWER,
                                                 secrets.token_hex(10))
        await self._assert_refused_and_recorded(first, WebsocketCommunicator(application, stream_path(again)))

    async def test_the_bots_stream_secret_cannot_attach_a_second_stream(self, client, api, bot, settings):
        from voicebots.bots.models import Voicebot

        settings.ANTHROPIC_API_KEY = ""
        first, _ = await self._live_call(client, api, bot)
        secret = (await Voicebot.objects.aget(pk=bot["id"])).stream_secret
        second = WebsocketCommunicator(application, bot_path(api, bot, "connect") + f"?token={secret}")
        await self._assert_refused_and_recorded(first, second)
