"""Browser calls (issue 16): the voice playground's socket through the ASGI app, the real runtime and pipeline, and
the vendor fakes on 127.0.0.1; bad input of every kind; who may call; the record; the API filter.
"""
from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from tests import calls
from tests.fakes.anthropic_server import Text, ToolUse, Turn
from tests.fakes.cartesia_server import PCM16_PATTERN
from tests.fakes.deepgram_server import silence_pcm16, speech_pcm16
from tests.fakes.http_handler import Reply
from voicebots.accounts.services import create_member
from voicebots.calls.models import Call
from voicebots.web.voice_protocol import MAX_AUDIO_BYTES, BrowserCallCodec

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.virtual_time]

FRAME = 640  # 20 ms at 16 kHz, 16-bit
codec = BrowserCallCodec
_close_consumer_connections = calls._close_consumer_connections  # a fixture


@pytest.fixture
async def vendors(settings):
    async with calls.vendor_fakes(settings, ms_per_char=20) as fakes:
        yield fakes


@pytest.fixture
def member(client, api):
    create_member(api.account, "talker", "a-long-password-123")
    client.login(username="talker", password="a-long-password-123")
    return client


@pytest.fixture
def bot(api):
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello, Smile Dental!"}).json()


def socket_for(client, bot_id, origin=b"http://127.0.0.1:8000"):
    headers = [(b"host", b"testserver"), (b"origin", origin)]
    if "sessionid" in client.cookies:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(application, f"/ws/voice/{bot_id}/", headers=headers)


class BrowserPeer(calls.SocketPeer):
    """Plays the page's part: plays the bot's audio in real time, acknowledges each checkpoint once playback
    reaches it, flushes on "clear" (answering "cleared"), and records everything it gets."""

    def __init__(self, communicator):
        self.events: list[dict] = []
        self.audio = bytearray()
        self.closed: dict | None = None
        self._play_end = 0.0
        self._acks: list[asyncio.TimerHandle] = []
        super().__init__(communicator)

    async def _read(self):
        loop = asyncio.get_running_loop()
        while True:
            output = await self.communicator.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                self.closed = output
                return
            message = codec.parse_from_server(output.get("bytes") or output.get("text"))
            now = loop.time()
            if isinstance(message, bytes):
                self.audio.extend(message)
                self._play_end = max(self._play_end, now) + len(message) / 32000
                continue
            self.events.append(message)
            if message["type"] == "checkpoint":
                self._acks.append(loop.call_later(max(0.0, self._play_end - now), self._ack, message["name"]))
            elif message["type"] == "clear":
                for handle in self._acks:
                    handle.cancel()
                self._play_end = now
                await self.send(codec.cleared())

    def _ack(self, name):
        asyncio.ensure_future(self.send(codec.played(name)))

    async def send(self, text):
        if self.closed is None:
            await self.communicator.send_to(text_data=text)

    async def speak(self, audio: bytes):
        for offset in range(0, len(audio), FRAME):
            await self.communicator.send_to(bytes_data=audio[offset:offset + FRAME])
            await asyncio.sleep(0.02)

    def of(self, kind):
        return [event for event in self.events if event["type"] == kind]

    def _ended_early(self):
        return None if self.closed is None else f"closed early: {self.events[-3:]}"

    def _seen(self):
        return str(self.events[-3:])


async def closing(communicator, timeout=5) -> tuple[dict, dict]:
    """The "end" event and the close that follows it."""
    end = json.loads(await communicator.receive_from(timeout=timeout))
    close = await communicator.receive_output(timeout=timeout)
    assert close["type"] == "websocket.close" and close["code"] == end["code"], (end, close)
    return end, close


async def started(member, bot_id) -> tuple[WebsocketCommunicator, BrowserPeer]:
    communicator = socket_for(member, bot_id)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=codec.start())
    return communicator, BrowserPeer(communicator)


# --- A call ------------------------------------------------------------------------------------------


@pytest.fixture
def bot_with_knowledge_and_tool(api, function_handler, django_capture_on_commit_callbacks):
    function_handler.reply("/hours", Reply.json({"open": "9-17"}))
    with django_capture_on_commit_callbacks(execute=True):
        document = api.upload("Knowledgebase/", "faq.md", b"# Parking\n\nFree parking is behind the building.").json()
    function = api.post("Function/", {"name": "opening_hours", "handler_url": function_handler.url_for("/hours")})
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello, Smile Dental!",
                                  "knowledgebase_ids": [document["id"]],
                                  "function_ids": [function.json()["id"]]}).json()


async def test_a_browser_call_greets_answers_shows_it_live_and_is_recorded(member, bot_with_knowledge_and_tool,
                                                                          vendors, api):
    llm, stt, tts = vendors
    stt.script("When are you open?")
    llm.script(Turn([ToolUse("opening_hours", {})], stop_reason="tool_use"), Turn([Text("From nine to five.")]))
    communicator, peer = await started(member, bot_with_knowledge_and_tool["id"])
    await peer.wait_for(lambda: peer.of("ready"))
    ready = peer.of("ready")[0]
    assert ready["format"] == {"encoding": "linear16", "sample_rate": 16000, "channels": 1}
    await peer.wait_for(lambda: len(peer.of("turn")) == 1)  # the greeting, heard
    assert peer.audio[:len(PCM16_PATTERN)] == PCM16_PATTERN  # 16-bit PCM from the voice, not mu-law
    assert tts.requests[0]["output_format"] == {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 16000}
    await peer.speak(silence_pcm16(200) + speech_pcm16(700) + silence_pcm16(600))
    await peer.wait_for(lambda: len(peer.of("turn")) == 2)

    greeting, reply = peer.of("turn")
    assert greeting["bot_text"] == "Hello, Smile Dental!"
    assert (reply["caller_text"], reply["bot_text"]) == ("When are you open?", "From nine to five.")
    for key in ("latency_ms", "stt_ms", "llm_ms", "tts_ms", "platform_ms"):
        assert reply["timings"][key] is not None, reply["timings"]
    assert any(event["final"] and event["text"] == "When are you open?" for event in peer.of("caller"))
    assert "".join(event["text"] for event in peer.of("bot")).endswith("From nine to five.")
    assert peer.of("tool_finished")[0]["name"] == "opening_hours" and "9-17" in peer.of("tool_finished")[0]["result"]
    assert peer.of("passages")  # knowledge was looked up (the fake's question shares no words, so maybe none)
    assert (stt.streams[0].query["encoding"], stt.streams[0].query["sample_rate"]) == ("linear16", "16000")

    await peer.send(codec.hangup())
    await peer.wait_for(lambda: peer.closed is not None)
    assert peer.of("end")[-1] == {"type": "end", "code": 1000, "reason": "The caller hung up."}
    assert peer.closed["code"] == 1000
    await communicator.disconnect()

    call = await Call.objects.aget(pk=ready["call_id"])
    assert call.direction == "web" and call.has_ended and call.end_reason == "The caller hung up."
    turns = [turn async for turn in call.turns.order_by("index")]
    assert [(t.caller_text, t.bot_text) for t in turns] == [
        ("", "Hello, Smile Dental!"), ("When are you open?", "From nine to five.")]
    assert turns[1].timings["latency_ms"] is not None and turns[1].tool_calls[0]["name"] == "opening_hours"
    events = [(event.kind, event.detail) async for event in call.events.all()]
    assert ("browser_call", {"user": "talker"}) in events
    system = " ".join(block["text"] for block in llm.requests[0].body["system"])
    assert "web browser" in system

    listed = await sync_to_async(api.get)("Call/", {"direction": "web"})
    assert [item["id"] for item in listed.json()["calls"]] == [ready["call_id"]]
    assert (await sync_to_async(api.get)("Call/", {"direction": "inbound"})).json()["calls"] == []
    wrong = await sync_to_async(api.get)("Call/", {"direction": "sideways"})
    assert wrong.status_code == 400 and "direction" in wrong.json()["error"]
    wrong = await sync_to_async(api.get)("Call/", {"voicebot_id": "not-a-uuid"})
    assert wrong.status_code == 400 and "voicebot_id" in wrong.json()["error"]
    mine = await sync_to_async(api.get)("Call/", {"voicebot_id": bot_with_knowledge_and_tool["id"], "direction": "web"})
    assert [item["id"] for item in mine.json()["calls"]] == [ready["call_id"]]


LONG = ("Our clinic opens at eight in the morning on weekdays and at nine on Saturdays, "
        "and we close at six in the evening except on Fridays when we close at four.")


async def test_a_barge_in_clears_the_browsers_playback_and_the_record_keeps_what_was_heard(member, bot, vendors):
    llm, stt, tts = vendors
    stt.script("When are you open?", "Stop please.")
    llm.script(Turn([Text(LONG)]), Turn([Text("Sure.")]))
    communicator, peer = await started(member, bot["id"])
    await peer.wait_for(lambda: len(peer.of("turn")) == 1)
    await peer.speak(speech_pcm16(700) + silence_pcm16(500))
    await peer.wait_for(lambda: peer.of("bot") and "eight" in "".join(e["text"] for e in peer.of("bot")))
    await asyncio.sleep(0.6)  # the reply is playing
    await peer.speak(speech_pcm16(600) + silence_pcm16(600))
    await peer.wait_for(lambda: peer.of("clear"))
    await peer.wait_for(lambda: len(peer.of("turn")) >= 3)
    await peer.send(codec.hangup())
    await peer.wait_for(lambda: peer.closed is not None)
    await communicator.disconnect()

    interrupted = peer.of("turn")[1]
    assert interrupted["interrupted"] and interrupted["bot_text"] and LONG.startswith(interrupted["bot_text"][:20])
    assert len(interrupted["bot_text"]) < len(LONG)
    call = await Call.objects.aget(pk=peer.of("ready")[0]["call_id"])
    turn = await call.turns.aget(index=1)
    assert turn.interrupted and turn.bot_text == interrupted["bot_text"]


async def test_the_bots_hang_up_ends_the_browser_call(member, api, vendors):
    llm, stt, tts = vendors
    stt.script("Goodbye.")
    llm.script(Turn([Text("Goodbye!"), ToolUse("end_call", {})], stop_reason="tool_use"), Turn([Text("")]))
    bot = await sync_to_async(api.post)("Voicebot/", {"name": "Desk"})
    communicator, peer = await started(member, bot.json()["id"])
    await peer.wait_for(lambda: peer.of("ready"))
    await peer.speak(speech_pcm16(500) + silence_pcm16(500))
    await peer.wait_for(lambda: peer.closed is not None)
    assert peer.of("end")[-1] == {"type": "end", "code": 1000, "reason": "The bot ended the call."}
    call = await Call.objects.aget(pk=peer.of("ready")[0]["call_id"])
    assert call.has_ended and call.end_reason == "The bot ended the call."


# --- Who may call -------------------------------------------------------------------------------------


async def test_a_stranger_is_told_to_sign_in(client, bot):
    communicator = socket_for(client, bot["id"])
    assert (await communicator.connect())[0]
    end, _ = await closing(communicator)
    assert end == {"type": "end", "code": 4401, "reason": "Sign in to talk to a bot."}


async def test_a_member_of_another_account_cannot_call_its_bots_but_a_superuser_can(member, other_api, settings):
    settings.ANTHROPIC_API_KEY = ""  # the call itself is not the point: it apologises
    theirs = await sync_to_async(other_api.post)("Voicebot/", {"name": "Theirs"})
    communicator = socket_for(member, theirs.json()["id"])
    assert (await communicator.connect())[0]
    end, _ = await closing(communicator)
    assert end["code"] == 4404 and "no such bot" in end["reason"]

    from django.test import Client

    from voicebots.accounts.services import create_account

    account, _ = await sync_to_async(create_account)("Operators")
    await sync_to_async(create_member)(account, "root", "a-long-password-123", superuser=True)
    operator = Client()
    await sync_to_async(operator.login)(username="root", password="a-long-password-123")
    communicator = socket_for(operator, theirs.json()["id"])
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=codec.start())
    assert json.loads(await communicator.receive_from(timeout=5))["type"] == "ready"
    await communicator.send_to(text_data=codec.hangup())
    await communicator.disconnect()


async def test_a_page_of_another_site_cannot_open_a_call(member, bot):
    communicator = socket_for(member, bot["id"], origin=b"https://evil.example")
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()  # its consumer ends now, not at the event loop's teardown
    assert await Call.objects.acount() == 0


async def test_an_account_has_at_most_its_limit_of_browser_calls_at_once(member, bot, settings):
    settings.ANTHROPIC_API_KEY = ""
    settings.BROWSER_CALLS_PER_ACCOUNT = 1
    first = socket_for(member, bot["id"])
    assert (await first.connect())[0]
    await first.send_to(text_data=codec.start())
    assert json.loads(await first.receive_from(timeout=5))["type"] == "ready"
    second = socket_for(member, bot["id"])
    assert (await second.connect())[0]
    await second.send_to(text_data=codec.start())
    end, _ = await closing(second)
    assert end["code"] == 4429 and "1 browser call in progress" in end["reason"]
    assert await Call.objects.acount() == 1
    await first.disconnect()


# --- Bad input: a clear close reason, nothing crashes, the record is complete -------------------------


async def test_a_format_other_than_16_khz_pcm_is_refused_before_any_call(member, bot):
    communicator = socket_for(member, bot["id"])
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=json.dumps({"type": "start", "format": {"encoding": "linear16",
                                                                                 "sample_rate": 48000}}))
    end, _ = await closing(communicator)
    assert end["code"] == 4415 and "16000 Hz" in end["reason"] and "48000" in end["reason"]
    assert await Call.objects.acount() == 0


@pytest.mark.parametrize("junk, code, words", [
    ({"text_data": "definitely not json"}, 4400, "not a JSON object"),
    ({"text_data": json.dumps({"type": "dance"})}, 4400, "Unknown or incomplete message 'dance'"),
    ({"text_data": json.dumps({"type": "start"})}, 4400, '"format"'),
    ({"bytes_data": b"\x01\x02\x03"}, 4400, "not whole 16-bit samples"),
    ({"bytes_data": bytes(MAX_AUDIO_BYTES + 2)}, 4413, "over the limit"),
    ({"text_data": "x" * 5000}, 4413, "over the limit"),
])
async def test_garbage_during_a_call_closes_it_with_a_reason_and_the_record_says_why(member, bot, vendors, junk,
                                                                                     code, words):
    communicator = socket_for(member, bot["id"])
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=codec.start())
    ready = json.loads(await communicator.receive_from(timeout=5))
    await communicator.send_to(**junk)
    while True:  # the apology's audio and checkpoints may come first
        output = await communicator.receive_output(timeout=5)
        if output.get("text") and json.loads(output["text"])["type"] == "end":
            break
    end = json.loads(output["text"])
    assert end["code"] == code and words in end["reason"], end
    assert (await communicator.receive_output(timeout=5))["code"] == code
    call = await Call.objects.aget(pk=ready["call_id"])
    assert call.has_ended and call.end_reason == f"Closed ({code}): {end['reason']}"


async def test_audio_or_anything_but_start_first_is_refused(member, bot):
    for first in ({"bytes_data": speech_pcm16(20)}, {"text_data": codec.played("turn0-seg0")}):
        communicator = socket_for(member, bot["id"])
        assert (await communicator.connect())[0]
        await communicator.send_to(**first)
        end, _ = await closing(communicator)
        assert end["code"] == 4400 and "before" in end["reason"]
    assert await Call.objects.acount() == 0


async def test_a_call_that_sends_no_audio_is_closed_and_recorded(member, bot, vendors, settings):
    settings.BROWSER_CALL_IDLE_SECONDS = 1
    communicator = socket_for(member, bot["id"])
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=codec.start())
    ready = json.loads(await communicator.receive_from(timeout=5))
    while True:
        output = await communicator.receive_output(timeout=5)
        if output.get("text") and json.loads(output["text"])["type"] == "end":
            break
    assert json.loads(output["text"]) == {"type": "end", "code": 4408,
                                          "reason": "No audio from the microphone for 1 s."}
    call = await Call.objects.aget(pk=ready["call_id"])
    assert call.has_ended and call.end_reason == "Closed (4408): No audio from the microphone for 1 s."

    silent = socket_for(member, bot["id"])  # and a socket that never starts
    assert (await silent.connect())[0]
    end, _ = await closing(silent, timeout=5)
    assert end["code"] == 4408 and "start message" in end["reason"]


async def test_the_browser_going_away_ends_the_call(member, bot, vendors):
    communicator = socket_for(member, bot["id"])
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=codec.start())
    ready = json.loads(await communicator.receive_from(timeout=5))
    await communicator.disconnect()
    call = await Call.objects.aget(pk=ready["call_id"])
    assert call.has_ended and call.end_reason == "The browser closed the connection."
    assert not vendors[1]._open  # no STT stream left open


def test_the_playground_has_the_talk_button_for_members_of_any_of_their_accounts(client, api, other_api):
    bot = api.post("Voicebot/", {"name": "Desk"}).json()
    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    user = create_member(api.account, "both", "a-long-password-123")
    from voicebots.accounts.models import Membership

    Membership.objects.create(user=user, account=other_api.account)
    client.login(username="both", password="a-long-password-123")
    for bot_id in (bot["id"], theirs["id"]):
        page = client.get(f"/playground/{bot_id}/")
        assert page.status_code == 200 and b'id="talk"' in page.content and b"/ws/voice/" in page.content


async def test_a_failure_starting_the_call_is_told_not_crashed(member, bot, monkeypatch):
    from voicebots.web import voice_consumer

    def broken(bot, user):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(voice_consumer, "open_browser_call", broken)
    communicator = socket_for(member, bot["id"])
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data=codec.start())
    end, _ = await closing(communicator)
    assert end == {"type": "end", "code": 1011, "reason": "The server could not start the call; try again."}


def test_a_browser_call_is_announced_and_ended_like_a_phone_call(api, settings, monkeypatch):
    """The account's webhooks hear of it: call.started when it opens, call.ended when it is finalized."""
    from django.contrib.auth import get_user_model

    from tests.network_guard import resolve_as_unknown

    from voicebots.bots.models import Voicebot
    from voicebots.calls import services as calls
    from voicebots.calls.browser import open_browser_call
    from voicebots.webhooks import services
    from voicebots.webhooks.models import WebhookEvent

    settings.WEBHOOK_ALLOW_HTTP = True
    resolve_as_unknown(monkeypatch, "hooks.example.com")  # the events are what counts here, not their delivery
    services.create_endpoint(api.account, url="https://hooks.example.com/x", events=["call.started", "call.ended"])
    bot_row = Voicebot.objects.create(account=api.account, name="Desk")
    user = get_user_model().objects.create_user("someone")
    call = open_browser_call(bot_row, user)
    calls.finalize(call, reason="The caller hung up.")
    started, ended = [json.loads(event.body) for event in WebhookEvent.objects.order_by("created_at")]
    assert (started["type"], started["data"]["id"], started["data"]["direction"]) == ("call.started", str(call.id),
                                                                                      "web")
    assert ended["type"] == "call.ended" and ended["data"]["end_reason"] == "The caller hung up."
