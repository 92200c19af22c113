"""Live phone calls end to end: Plivo frames -> the real consumer -> Deepgram/Anthropic (or OpenAI-compatible)/
Cartesia fakes -> back.

Every vendor is a protocol-accurate fake on 127.0.0.1 driven by its real SDK.
"""
import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from tests import calls
from tests.fakes.anthropic_server import Text, ToolUse, Turn
from tests.fakes.cartesia_server import FakeCartesia
from tests.fakes.deepgram_server import FakeDeepgram, silence, speech
from tests.fakes.http_handler import Reply
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.openai_server import Text as OpenAIText
from tests.fakes.openai_server import ToolUse as OpenAIToolUse
from tests.fakes.openai_server import Turn as OpenAITurn
from tests.test_plivo_stream import answer, start_frame
from voicebots.calls.models import Call
from voicebots.telephony.codec import CheckpointRequested, ClearRequested, DtmfRequested, PlayAudio, PlivoStreamCodec

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.virtual_time]

FRAME = 160
# Fixtures (other call tests take them from here too).
vendors, _close_consumer_connections = calls.vendors, calls._close_consumer_connections


@pytest.fixture
def phone_bot(api, settings, django_capture_on_commit_callbacks, function_handler):
    settings.PLIVO_VERIFY_SIGNATURES = False
    function_handler.reply("/book", Reply.json({"booked": True}))
    with django_capture_on_commit_callbacks(execute=True):
        document = api.upload("Knowledgebase/", "faq.md", b"# Parking\n\nFree parking is behind the building.").json()
    function = api.post("Function/", {"name": "book_visit", "handler_url": function_handler.url_for("/book"),
                                      "userParameters": [{"name": "day", "type": "string"}]}).json()
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello, Smile Dental!",
                                  "knowledgebase_ids": [document["id"]], "function_ids": [function["id"]]}).json()


@pytest.fixture
def answered_call(client, api, phone_bot):
    call_uuid = str(uuid.uuid4())
    return call_uuid, answer(client, api, phone_bot, call_uuid)


# Plivo's event names of the server's messages, as the peer records them.
EVENTS = {PlayAudio: "playAudio", CheckpointRequested: "checkpoint", ClearRequested: "clearAudio",
          DtmfRequested: "sendDTMF"}


class PlivoPeer(calls.SocketPeer):
    """Plays Plivo's side over the communicator (with the codec): media every 20 ms, acks checkpoints, records
    what it gets."""

    def __init__(self, communicator, stream_id="stream-1"):
        self.codec = PlivoStreamCodec(stream_id)
        self.frames = []  # (event, message, monotonic time)
        super().__init__(communicator)

    async def _read(self):
        loop = asyncio.get_running_loop()
        while True:
            output = await self.communicator.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                self.frames.append(("closed", output, loop.time()))
                return
            message = self.codec.parse_from_server(output["text"])
            self.frames.append((EVENTS[type(message)], message, loop.time()))
            if isinstance(message, CheckpointRequested):  # played instantly: acknowledge at once
                await self.send(self.codec.played(message.name))

    async def send(self, text: str):
        await self.communicator.send_to(text_data=text)

    async def send_audio(self, audio: bytes, realtime: bool = True):
        for offset in range(0, len(audio), FRAME):
            await self.send(self.codec.media(audio[offset:offset + FRAME].ljust(FRAME, b"\xff")))
            if realtime:
                await asyncio.sleep(0.02)

    def count(self, event):
        return sum(1 for kind, _, _ in self.frames if kind == event)

    def _seen(self):
        return str([kind for kind, _, _ in self.frames])


async def start_call(client, api, bot) -> tuple[str, WebsocketCommunicator, PlivoPeer]:
    """A new inbound call of `bot`, answered and its stream started as Plivo would; returns its CallUUID too."""
    call_uuid = str(uuid.uuid4())
    path = await sync_to_async(answer)(client, api, bot, call_uuid)
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=start_frame(call_uuid))
    return call_uuid, communicator, PlivoPeer(communicator)


async def test_a_call_greets_answers_from_knowledge_calls_a_function_and_is_recorded(answered_call, vendors,
                                                                                   function_handler):
    llm, stt, tts = vendors
    call_uuid, path = answered_call
    stt.script("Where can I park?", "Book me for Monday please.")
    llm.script(Turn([Text("Parking is free, ", "behind the building.")]),
               Turn([ToolUse("book_visit", {"day": "Monday"})], stop_reason="tool_use"),
               Turn([Text("You are booked for Monday.")]))
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=start_frame(call_uuid))
    peer = PlivoPeer(communicator)

    await peer.wait_for(lambda: peer.count("playAudio") > 0)  # the greeting comes first, unprompted
    await peer.send_audio(silence(200))
    assert "Hello, Smile Dental!" in tts.transcripts.values()

    audio_before = peer.count("playAudio")
    await peer.send_audio(speech(900) + silence(800))
    await peer.wait_for(lambda: peer.count("playAudio") > audio_before + 5)
    await peer.send_audio(silence(600))
    await peer.send(peer.codec.dtmf("5"))
    await peer.send_audio(speech(900) + silence(800))
    await peer.wait_for(lambda: len(function_handler.requests) == 1)
    await peer.send_audio(silence(1500))
    await peer.send(peer.codec.stop(call_uuid))
    await peer.wait_for(lambda: peer.count("closed") or True)
    await communicator.disconnect()

    system = " ".join(block["text"] for block in llm.requests[0].body["system"])
    assert "Free parking is behind the building." in system
    assert "14155550100" in system  # the caller's number is part of the context
    payload = function_handler.requests[0].json()
    assert payload["call"]["call_uuid"] == call_uuid and payload["parameters"] == {"day": "Monday"}

    call = await Call.objects.aget(call_uuid=call_uuid)
    assert call.has_ended and call.stream_id == "stream-1"
    turns = [turn async for turn in call.turns.order_by("index")]
    assert turns[0].bot_text == "Hello, Smile Dental!"
    assert turns[1].caller_text == "Where can I park?"
    assert turns[1].bot_text == "Parking is free, behind the building."
    for key in ("latency_ms", "platform_ms", "stt_ms", "llm_ms", "tts_ms", "first_audio_sent_at_ms"):
        assert turns[1].timings.get(key) is not None, turns[1].timings
    assert any(turn.tool_calls and turn.tool_calls[0]["name"] == "book_visit" for turn in turns)
    kinds = [event.kind async for event in call.events.all()]
    assert "dtmf" in kinds


async def test_a_bots_later_calls_play_its_greeting_from_the_cache(client, api, phone_bot, vendors):
    _, _, tts = vendors
    greetings = []
    for _ in range(2):
        call_uuid, communicator, peer = await start_call(client, api, phone_bot)
        await peer.wait_for(lambda: peer.count("playAudio") > 0)
        await peer.send_audio(silence(1500))  # the whole greeting plays
        greetings.append(b"".join(message.audio for kind, message, _ in peer.frames if kind == "playAudio"))
        await peer.send(peer.codec.stop(call_uuid))
        await communicator.disconnect()

    assert list(tts.transcripts.values()).count("Hello, Smile Dental!") == 1  # synthesized on the first call only
    assert len(greetings[1]) >= 0.9 * len(greetings[0]) > 0
    second = await Call.objects.filter(voicebot_id=phone_bot["id"]).order_by("-created_at").afirst()
    greeting = await second.turns.aget(index=0)
    assert greeting.bot_text == "Hello, Smile Dental!" and not greeting.interrupted


@pytest.fixture
async def openai_vendors(settings):
    async with FakeOpenAI() as llm, FakeDeepgram() as stt, FakeCartesia() as tts:
        settings.ANTHROPIC_API_KEY = ""  # not needed by a bot on an OpenAI-compatible model
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = llm.api_key, llm.url
        settings.DEEPGRAM_API_KEY = settings.CARTESIA_API_KEY = "test-key"
        settings.DEEPGRAM_BASE_URL = stt.ws_url.replace("ws://", "http://")
        settings.CARTESIA_BASE_URL = tts.http_url
        yield llm, stt, tts


async def test_a_call_on_an_openai_compatible_model_uses_knowledge_and_functions(api, phone_bot, answered_call,
                                                                                 openai_vendors, function_handler):
    llm, stt, tts = openai_vendors
    call_uuid, path = answered_call
    patched = await sync_to_async(api.patch)(f"Voicebot/{phone_bot['id']}",
                                             {"answer_llm": {"provider": "openai", "model": "llama3.2:3b"}})
    assert patched.status_code == 204
    stt.script("Where can I park?", "Book me for Monday please.")
    llm.script(OpenAITurn([OpenAIText("Parking is free, ", "behind the building.")]),
               OpenAITurn([OpenAIToolUse("book_visit", {"day": "Monday"})]),
               OpenAITurn([OpenAIText("You are booked for Monday.")]))
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=start_frame(call_uuid))
    peer = PlivoPeer(communicator)

    await peer.wait_for(lambda: peer.count("playAudio") > 0)  # the greeting
    await peer.send_audio(silence(200) + speech(900) + silence(800))
    await peer.wait_for(lambda: "Parking is free, behind the building." in " ".join(tts.transcripts.values()))
    await peer.send_audio(silence(600) + speech(900) + silence(800))
    await peer.wait_for(lambda: len(function_handler.requests) == 1)
    await peer.wait_for(lambda: "You are booked for Monday." in " ".join(tts.transcripts.values()))
    await peer.send_audio(silence(600))
    await peer.send(peer.codec.stop(call_uuid))
    await communicator.disconnect()

    first = llm.chat_requests[0].body
    assert first["model"] == "llama3.2:3b"
    assert "Free parking is behind the building." in first["messages"][0]["content"]
    assert "14155550100" in first["messages"][0]["content"]  # the caller's number is part of the context
    assert {"end_call"} <= {tool["function"]["name"] for tool in first["tools"]}  # call control on any model
    assert llm.chat_requests[2].body["messages"][-1]["role"] == "tool"
    assert function_handler.requests[0].json()["parameters"] == {"day": "Monday"}
    call = await Call.objects.aget(call_uuid=call_uuid)
    assert call.has_ended
    turns = [turn async for turn in call.turns.order_by("index")]
    assert turns[1].caller_text == "Where can I park?" and turns[1].bot_text == "Parking is free, behind the building."
    assert any(turn.tool_calls and turn.tool_calls[0]["name"] == "book_visit" for turn in turns)
    assert any(message.get("tool_calls") for message in call.history)  # stored in the project's own format


@pytest.fixture
def outbound_call(api):
    from voicebots.bots.models import Voicebot
    from voicebots.telephony.tokens import stream_token

    bot = Voicebot.objects.create(account=api.account, name="Reminder", welcome_message="Hello {{first_name}}!",
                                  prompt="Remind {{first_name}} of order {{order}}.")
    call = Call.objects.create(account=api.account, voicebot=bot, direction="outbound", status="ringing",
                               variables={"first_name": "Ada", "order": "1042"})
    return call, f"/v1/Account/{api.account.auth_id}/Voicebot/{bot.id}/connect?token={stream_token(call.id)}"


async def test_an_outbound_calls_variables_fill_the_greeting_and_prompt(outbound_call, vendors):
    llm, stt, tts = vendors
    call, path = outbound_call
    stt.script("Which order?")
    llm.script(Turn([Text("Order 1042.")]))
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=start_frame("outbound-call-uuid"))
    peer = PlivoPeer(communicator)
    await peer.wait_for(lambda: peer.count("playAudio") > 0)
    assert "Hello Ada!" in tts.transcripts.values()
    await peer.send_audio(silence(600) + speech(900) + silence(800))
    await peer.wait_for(lambda: len(llm.requests) == 1)
    system = " ".join(block["text"] for block in llm.requests[0].body["system"])
    assert "Remind Ada of order 1042." in system and "{{" not in system
    await communicator.disconnect()
