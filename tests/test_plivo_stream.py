"""The Plivo stream consumer, end to end through the ASGI app, speaking Plivo's protocol."""
import json
import uuid
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from config.asgi import application
from voicebots.calls.models import Call
from voicebots.telephony.codec import CheckpointRequested, PlayAudio, PlivoStreamCodec

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_consumer_connections():
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def unsigned_plivo(settings):
    settings.PLIVO_VERIFY_SIGNATURES = False


@pytest.fixture
def bot(api, unsigned_plivo):
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello, Smile Dental!"}).json()


def answer(client, api, bot, call_uuid=None) -> str:
    """The stream path (with its token) from the answer XML, as Plivo would connect to it."""
    response = client.post(f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/inbound_call",
                           {"CallUUID": call_uuid or str(uuid.uuid4()), "From": "14155550100", "To": "14155550199",
                            "Direction": "inbound", "CallStatus": "in-progress"})
    assert response.status_code == 200
    url = urlsplit(ElementTree.fromstring(response.content).find("Stream").text)
    return f"{url.path}?{url.query}"


def start_frame(call_uuid: str, stream_id: str = "stream-1") -> str:
    """Plivo's `start` frame of a mu-law stream, as the codec (Plivo's side of it) writes it."""
    return PlivoStreamCodec(stream_id).start(call_uuid, account_id="MA00000000000000TEST")


@pytest.fixture
def answered(client, api, bot):
    call_uuid = str(uuid.uuid4())
    return call_uuid, answer(client, api, bot, call_uuid)


async def test_a_wrong_or_missing_token_is_refused_before_any_work(api, bot):
    base = f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/connect"
    for path in (base, base + "?token=forged", base + "?token=" + str(uuid.uuid4())):
        communicator = WebsocketCommunicator(application, path)
        connected, code = await communicator.connect()
        assert not connected and code == 4403
        await communicator.disconnect()  # its consumer ends now, not at the event loop's teardown
    assert await Call.objects.acount() == 0


async def test_missing_keys_play_an_apology_and_the_record_says_why(answered, settings):
    settings.ANTHROPIC_API_KEY = settings.DEEPGRAM_API_KEY = settings.CARTESIA_API_KEY = ""
    call_uuid, path = answered
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data=start_frame(call_uuid))
    audio, checkpoint = b"", None
    while checkpoint is None:
        message = PlivoStreamCodec.parse_from_server(await communicator.receive_from(timeout=5))
        if isinstance(message, PlayAudio):
            assert (message.content_type, message.sample_rate) == ("audio/x-mulaw", 8000)
            audio += message.audio
        elif isinstance(message, CheckpointRequested):
            assert message.stream_id == "stream-1"
            checkpoint = message.name
    assert len(audio) > 8000  # more than a second of apology, not silence
    await communicator.send_to(text_data=PlivoStreamCodec("stream-1").played(checkpoint))
    assert (await communicator.receive_output(timeout=5))["type"] == "websocket.close"  # then it hangs up
    call = await Call.objects.aget(call_uuid=call_uuid)
    assert call.has_ended
    for key in ("ANTHROPIC_API_KEY", "DEEPGRAM_API_KEY", "CARTESIA_API_KEY"):
        assert key in call.end_reason


async def test_a_stored_unknown_provider_plays_the_apology_and_is_never_replaced(answered, bot, settings):
    from voicebots.bots.models import Voicebot

    settings.ANTHROPIC_API_KEY = settings.DEEPGRAM_API_KEY = settings.CARTESIA_API_KEY = "test-key"
    await Voicebot.objects.filter(pk=bot["id"]).aupdate(tts_provider="elevenlabs")
    call_uuid, path = answered
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=start_frame(call_uuid))
    message = PlivoStreamCodec.parse_from_server(await communicator.receive_from(timeout=5))
    assert isinstance(message, PlayAudio)  # the recorded apology, not a Cartesia voice in its place
    await communicator.disconnect()
    call = await Call.objects.aget(call_uuid=call_uuid)
    assert '"elevenlabs" is not a supported text-to-speech provider; supported: cartesia, deepgram' in call.end_reason


async def test_malformed_and_unknown_frames_are_skipped(answered, settings):
    settings.ANTHROPIC_API_KEY = ""
    call_uuid, path = answered
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    for junk in ("not json", "[1, 2]", json.dumps({"event": "media"}), json.dumps({"event": "wat"})):
        await communicator.send_to(text_data=junk)
    await communicator.send_to(text_data=start_frame(call_uuid))
    await communicator.send_json_to({"event": "media", "media": {"payload": "%%%not-base64"}})
    await communicator.send_json_to({"event": "dtmf", "dtmf": {}})
    message = PlivoStreamCodec.parse_from_server(await communicator.receive_from(timeout=5))
    assert isinstance(message, PlayAudio)  # still alive and talking
    await communicator.disconnect()
    assert (await Call.objects.aget(call_uuid=call_uuid)).has_ended


async def test_a_second_stream_for_an_ended_call_is_refused(answered, settings):
    settings.ANTHROPIC_API_KEY = ""
    call_uuid, path = answered
    first = WebsocketCommunicator(application, path)
    assert (await first.connect())[0]
    await first.send_to(text_data=start_frame(call_uuid))
    await first.receive_from(timeout=5)
    await first.send_to(text_data=PlivoStreamCodec("stream-1").stop(call_uuid))
    await first.disconnect()
    second = WebsocketCommunicator(application, path)
    connected, code = await second.connect()
    assert not connected and code == 4403
    await second.disconnect()


async def test_a_stream_for_another_calls_token_is_refused(answered, settings):
    settings.ANTHROPIC_API_KEY = ""
    _, path = answered
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=start_frame("a-different-call-uuid"))
    assert (await communicator.receive_output(timeout=5))["type"] == "websocket.close"
