"""The carrier-neutral call runtime: audio formats as a property of the transport, the Plivo stream codec, the
vendors asked for the transport's format, and the runtime itself with its audio taps.

Vendors are the protocol-accurate fakes on 127.0.0.1 driven by their real SDKs; the database is real.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import numpy as np
import pytest
import redis
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from config.asgi import application
from tests.fakes.anthropic_server import FakeAnthropic, Text, Turn
from tests.fakes.cartesia_server import PCM16_PATTERN, FakeCartesia, speech_audio
from tests.fakes.deepgram_server import FakeDeepgram, silence_pcm16, speech_pcm16
from tests.fakes.deepgram_tts_server import FakeAura
from tests.test_plivo_stream import answer
from voicebots.callruntime.records import AudioCache, recorded_audio
from voicebots.callruntime.runtime import CallRuntime
from voicebots.calls.models import Call
from voicebots.providers.cartesia_tts import CartesiaTTS
from voicebots.providers.deepgram_stt import DeepgramSTT
from voicebots.providers.deepgram_tts import DeepgramAuraTTS
from voicebots.providers.silero_vad import BatchDetector, SileroActivity, judge
from voicebots.telephony.codec import (
    AudioCleared,
    CheckpointPlayed,
    CheckpointRequested,
    ClearRequested,
    DtmfReceived,
    DtmfRequested,
    MalformedFrame,
    MediaReceived,
    PlayAudio,
    PlivoStreamCodec,
    StreamStarted,
    StreamStopped,
)
from voicebots.voice.audio import MULAW_8K, PCM16_16K, AudioFormat, convert, mulaw_to_pcm16
from voicebots.voice.ports import SegmentDone, SpeechAudio, Transcript

# --- Audio formats ----------------------------------------------------------------------------------


def test_formats_know_their_frames_silence_and_durations():
    assert (MULAW_8K.frame_bytes, PCM16_16K.frame_bytes) == (160, 640)
    assert MULAW_8K.silence(20) == b"\xff" * 160 and PCM16_16K.silence(20) == bytes(640)
    assert PCM16_16K.pad_to_frame(b"\x01\x02") == b"\x01\x02" + bytes(638)
    assert MULAW_8K.duration_ms(8000) == 1000 and PCM16_16K.duration_ms(32000) == 1000
    assert PCM16_16K.rms(PCM16_16K.silence(20)) == 0 and PCM16_16K.rms(b"") == 0


def test_the_same_sound_has_the_same_level_in_either_format():
    tone = speech_pcm16(200)
    as_mulaw = convert(tone, PCM16_16K, MULAW_8K)
    assert len(as_mulaw) == 1600  # half the samples, one byte each
    assert abs(PCM16_16K.rms(tone) - MULAW_8K.rms(as_mulaw)) < 0.05 * PCM16_16K.rms(tone)
    back = convert(as_mulaw, MULAW_8K, PCM16_16K)
    assert len(back) == len(tone)
    assert abs(PCM16_16K.rms(back) - PCM16_16K.rms(tone)) < 0.05 * PCM16_16K.rms(tone)


def test_shipped_audio_is_converted_to_the_transports_format():
    phone = recorded_audio("trouble")
    browser = recorded_audio("trouble", PCM16_16K)
    assert len(browser) == 4 * len(phone)  # twice the samples, two bytes each
    level = np.abs(mulaw_to_pcm16(phone).astype(np.float32)).mean()
    assert abs(np.abs(PCM16_16K.to_pcm16(browser).astype(np.float32)).mean() - level) < 0.1 * level


def test_cached_greetings_are_kept_apart_per_format():
    phone, browser = AudioCache(MULAW_8K), AudioCache(PCM16_16K)
    assert phone._key("bot", "voice", "Hi") != browser._key("bot", "voice", "Hi")


async def test_cached_audio_is_kept_in_redis_and_a_prefetch_serves_the_next_read():
    bot_id, cache = str(uuid.uuid4()), AudioCache()
    assert await cache.get(bot_id, "voice", "Hi") is None
    await cache.put(bot_id, "voice", "Hi", b"first")
    assert await AudioCache().get(bot_id, "voice", "Hi") == b"first"  # another call's cache reads it too

    cache.prefetch(bot_id, "voice", "Hi")
    await asyncio.gather(*cache._prefetched.values())  # read now...
    await cache.put(bot_id, "voice", "Hi", b"second")
    assert await cache.get(bot_id, "voice", "Hi") == b"first"  # ...and handed to the next read of that entry
    assert await cache.get(bot_id, "voice", "Hi") == b"second"  # once
    assert await cache.get(bot_id, "other voice", "Hi") is None


async def test_a_prefetch_from_an_unreachable_redis_means_synthesizing_not_an_error(settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    cache = AudioCache()
    cache.prefetch("bot", "voice", "Hi")
    assert await cache.get("bot", "voice", "Hi") is None
    assert "Reading cached audio failed" in caplog.text
    with pytest.raises(redis.ConnectionError):  # a plain read fails loudly: the session logs it, synthesizes
        await cache.get("bot", "voice", "Hi")


# --- The Plivo stream codec -------------------------------------------------------------------------


def test_the_codec_reads_every_plivo_event():
    plivo, server = PlivoStreamCodec("stream-9"), PlivoStreamCodec()
    started = server.parse(plivo.start("call-1", account_id="MA123", extra_headers="a=1"))
    assert started == StreamStarted("call-1", "stream-9", "MA123", MULAW_8K, "audio/x-mulaw", "a=1")
    assert server.stream_id == "stream-9"
    assert server.parse(plivo.media(b"\x01\x02")) == MediaReceived(b"\x01\x02", "inbound")
    assert server.parse(plivo.played("turn0-seg0")) == CheckpointPlayed("turn0-seg0")
    assert server.parse(json.dumps({"event": "played", "name": "x"})) == CheckpointPlayed("x")  # the older name
    assert server.parse(plivo.cleared()) == AudioCleared()
    assert server.parse(plivo.dtmf("7")) == DtmfReceived("7")
    assert server.parse(plivo.stop("call-1")) == StreamStopped("hangup")
    numbers = [json.loads(frame)["sequenceNumber"] for frame in (plivo.media(b""), plivo.cleared())]
    assert numbers[1] == numbers[0] + 1


def test_the_codec_builds_the_servers_messages_and_plivos_side_reads_them():
    server = PlivoStreamCodec("s-1")
    assert PlivoStreamCodec.parse_from_server(server.play_audio(b"\x10" * 160)) == PlayAudio(
        b"\x10" * 160, "audio/x-mulaw", 8000)
    assert PlivoStreamCodec.parse_from_server(server.checkpoint("c")) == CheckpointRequested("c", "s-1")
    assert PlivoStreamCodec.parse_from_server(server.clear_audio()) == ClearRequested("s-1")
    assert PlivoStreamCodec.parse_from_server(server.send_dtmf("12#")) == DtmfRequested("12#")
    assert json.loads(server.clear_audio()) == {"event": "clearAudio", "streamId": "s-1"}  # streamId: always


@pytest.mark.parametrize("frame, why", [
    ("not json", "not a JSON object"), ("[1]", "not a JSON object"),
    ('{"event": "media"}', "media without a media object"),
    ('{"event": "media", "media": {"payload": "%%%"}}', "media without a valid payload"),
    ('{"event": "dtmf", "dtmf": {}}', "dtmf without a digit"),
    ('{"event": "start", "start": {"callId": "c"}}', "start without callId or streamId"),
    ('{"event": "wat"}', "unknown event 'wat'"),
])
def test_the_codec_says_what_is_wrong_with_a_frame(frame, why):
    with pytest.raises(MalformedFrame, match=why):
        PlivoStreamCodec().parse(frame)


def test_a_stream_in_l16_has_that_format_and_an_unknown_one_falls_back_to_mulaw():
    server = PlivoStreamCodec()
    started = server.parse(PlivoStreamCodec("s", PCM16_16K).start("c"))
    assert started.audio_format == PCM16_16K and started.content_type == "audio/x-l16"
    assert json.loads(server.play_audio(b"\0\0"))["media"] | {"payload": ""} == {
        "contentType": "audio/x-l16", "sampleRate": 16000, "payload": ""}
    odd = json.dumps({"event": "start", "start": {"callId": "c", "streamId": "s",
                                                 "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 16000}}})
    started = server.parse(odd)
    assert started.audio_format is None and server.audio_format == MULAW_8K


# --- Vendors in the browser's format ----------------------------------------------------------------


async def test_deepgram_is_told_the_format_and_transcribes_linear16_at_16_khz():
    async with FakeDeepgram(["Hello there."]) as fake:
        stt = DeepgramSTT(fake.api_key, websocket_url=fake.ws_url, endpointing_ms=200, audio_format=PCM16_16K)
        await stt.connect()
        events = []

        async def collect():
            async for event in stt.events():
                events.append(event)

        reader = asyncio.create_task(collect())
        audio = speech_pcm16(400) + silence_pcm16(700)
        for offset in range(0, len(audio), 640):
            await stt.send_audio(audio[offset:offset + 640])
            await asyncio.sleep(0.02)
        await stt.aclose()
        await asyncio.wait_for(reader, 2)
    query = fake.streams[0].query
    assert (query["encoding"], query["sample_rate"]) == ("linear16", "16000")
    assert [e.text for e in events if isinstance(e, Transcript) and e.speech_final] == ["Hello there."]
    assert fake.streams[0].audio_bytes == len(audio)


async def test_a_format_deepgram_cannot_decode_is_refused():
    async with FakeDeepgram() as fake:
        stt = DeepgramSTT(fake.api_key, websocket_url=fake.ws_url, audio_format=AudioFormat("linear16", 11025))
        with pytest.raises(Exception, match="400"):
            await stt.connect()


async def speak(tts, *segments: str) -> list:
    await tts.connect()
    turn = tts.start_turn()
    for segment in segments:
        await turn.push(segment)
    await turn.finish()
    events = [event async for event in turn.events()]
    await tts.aclose()
    return events


async def test_cartesia_speaks_16_bit_pcm_at_16_khz_for_a_browser():
    async with FakeCartesia() as fake:
        tts = CartesiaTTS(fake.api_key, "voice-1", base_url=fake.http_url, websocket_base_url=fake.ws_url,
                          audio_format=PCM16_16K)
        events = await speak(tts, "Hello.")
    assert fake.requests[0]["output_format"] == {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 16000}
    audio = b"".join(e.audio for e in events if isinstance(e, SpeechAudio))
    assert audio == speech_audio("Hello.", 60, "pcm_s16le", 16000) and audio[:len(PCM16_PATTERN)] == PCM16_PATTERN
    assert isinstance(events[-1], SegmentDone)


async def test_aura_speaks_linear16_at_16_khz_for_a_browser():
    async with FakeAura() as fake:
        tts = DeepgramAuraTTS(fake.api_key, "luna", base_url=fake.url, audio_format=PCM16_16K)
        events = await speak(tts, "Hello.")
    assert (fake.requests[0].query["encoding"], fake.requests[0].query["sample_rate"]) == ("linear16", "16000")
    assert b"".join(e.audio for e in events if isinstance(e, SpeechAudio)) == speech_audio(
        "Hello.", 60, "pcm_s16le", 16000)


# --- The voice detector at 16 kHz -------------------------------------------------------------------


def test_silero_hears_speech_at_16_khz_and_batches_calls_of_both_rates():
    phone, browser = recorded_audio("trouble"), recorded_audio("trouble", PCM16_16K)

    def speech_frames(activity, audio, frame_bytes):
        return sum(activity.update(audio[i:i + frame_bytes], i) for i in range(0, len(audio), frame_bytes))

    frames = len(browser) // 640
    assert speech_frames(SileroActivity(audio_format=PCM16_16K), browser, 640) > frames // 2
    assert speech_frames(SileroActivity(audio_format=PCM16_16K), silence_pcm16(1000), 640) == 0
    with pytest.raises(ValueError, match="8 or 16 kHz"):
        SileroActivity(audio_format=AudioFormat("linear16", 24000))

    detector = BatchDetector()
    batched = [SileroActivity(detector=detector), SileroActivity(detector=detector, audio_format=PCM16_16K)]
    alone = [SileroActivity(), SileroActivity(audio_format=PCM16_16K)]
    for index in range(len(phone) // 160):  # a phone call and a browser call side by side
        for activities in (batched, alone):
            activities[0].update(phone[index * 160:(index + 1) * 160], index * 0.02)
            activities[1].update(browser[index * 640:(index + 1) * 640], index * 0.02)
    deadline = time.monotonic() + 10
    while detector._waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    for one, other in zip(batched, alone):
        assert one.last_speech_at is not None and one.last_speech_at == other.last_speech_at
    judge([])  # nothing to judge is fine


# --- The runtime ------------------------------------------------------------------------------------


class MemoryLeg:
    """A transport's leg that keeps what it is sent, acknowledges checkpoints at once, and counts hang-ups."""

    dropped_frames = 0

    def __init__(self, audio_format=PCM16_16K) -> None:
        self.input_format = self.output_format = audio_format
        self.audio, self.checkpoints, self.clears, self.hang_ups = bytearray(), [], 0, 0
        self.runtime = None

    async def send_audio(self, frame):
        assert len(frame) == self.output_format.frame_bytes
        self.audio.extend(frame)

    async def checkpoint(self, name):
        self.checkpoints.append(name)
        asyncio.get_running_loop().call_soon(self.runtime.on_checkpoint_played, name)

    async def clear(self):
        self.clears += 1

    async def send_dtmf(self, digits):
        raise AssertionError("no keys on this call")

    async def transfer(self, destination, summary=""):
        return False

    async def hang_up(self):
        self.hang_ups += 1


class Tap:
    def __init__(self):
        self.caller, self.bot, self.cleared_count = bytearray(), bytearray(), 0

    def caller_audio(self, audio):
        self.caller.extend(audio)

    def bot_audio(self, frame):
        self.bot.extend(frame)

    def cleared(self):
        self.cleared_count += 1


@pytest.fixture
async def vendors(settings):
    async with FakeAnthropic() as llm, FakeDeepgram() as stt, FakeCartesia() as tts:
        settings.ANTHROPIC_API_KEY = settings.DEEPGRAM_API_KEY = settings.CARTESIA_API_KEY = "test-key"
        settings.ANTHROPIC_BASE_URL = llm.url
        settings.DEEPGRAM_BASE_URL = stt.ws_url.replace("ws://", "http://")
        settings.CARTESIA_BASE_URL = tts.http_url
        yield llm, stt, tts
    await sync_to_async(connections.close_all)()


async def wait_for(condition, timeout=10):
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.django_db(transaction=True)
async def test_the_runtime_runs_a_call_in_the_legs_format_with_taps_and_finalizes_it(api, vendors):
    llm, stt, tts = vendors
    stt.script("What time do you open?")
    llm.script(Turn([Text("We open at nine.")]))
    bot_data = await sync_to_async(api.post)("Voicebot/", {"name": "Desk", "welcome_message": "Hello!"})
    from voicebots.bots.models import Voicebot

    bot = await Voicebot.objects.select_related("account").aget(pk=bot_data.json()["id"])
    call = await Call.objects.acreate(account=bot.account, voicebot=bot, direction=Call.Direction.WEB,
                                      status=Call.Status.IN_PROGRESS)
    leg, tap = MemoryLeg(), Tap()
    runtime = CallRuntime(leg, call, bot, channel="voice call from a web browser", taps=[tap])
    leg.runtime = runtime
    await runtime.start()
    await wait_for(lambda: "turn0-seg0" in leg.checkpoints)  # the greeting
    assert tts.requests[0]["output_format"]["encoding"] == "pcm_s16le"
    assert stt.streams[0].query["encoding"] == "linear16"
    caller = speech_pcm16(600) + silence_pcm16(900)
    for offset in range(0, len(caller), 640):
        runtime.feed_audio(caller[offset:offset + 640])
        await asyncio.sleep(0.02)
    await wait_for(lambda: any(name.startswith("turn1") for name in leg.checkpoints))
    await asyncio.sleep(0.2)
    await runtime.end("The caller hung up.")
    await runtime.end("Twice is a no-op.")

    assert bytes(tap.caller) == caller and bytes(tap.bot) == bytes(leg.audio)
    assert bytes(leg.audio).count(PCM16_PATTERN) > 10  # the voice's 16-bit audio reached the leg whole
    system = " ".join(block["text"] for block in llm.requests[0].body["system"])
    assert "web browser" in system and "Caller's number" not in system
    call = await Call.objects.aget(pk=call.pk)
    assert call.has_ended and call.end_reason == "The caller hung up."
    turns = [turn async for turn in call.turns.order_by("index")]
    assert [(t.caller_text, t.bot_text) for t in turns] == [("", "Hello!"), ("What time do you open?",
                                                                            "We open at nine.")]
    assert turns[1].timings["latency_ms"] is not None


@pytest.mark.django_db(transaction=True)
async def test_without_keys_the_runtime_plays_the_apology_in_the_legs_format(api, settings):
    settings.ANTHROPIC_API_KEY = ""
    from voicebots.bots.models import Voicebot

    bot_data = await sync_to_async(api.post)("Voicebot/", {"name": "Desk"})
    bot = await Voicebot.objects.select_related("account").aget(pk=bot_data.json()["id"])
    call = await Call.objects.acreate(account=bot.account, voicebot=bot, direction=Call.Direction.WEB)
    leg = MemoryLeg()
    runtime = CallRuntime(leg, call, bot, channel="voice call from a web browser")
    leg.runtime = runtime
    await runtime.start()
    await wait_for(lambda: leg.hang_ups == 1)
    assert len(leg.audio) >= len(recorded_audio("not_configured", PCM16_16K))
    call = await Call.objects.aget(pk=call.pk)
    assert call.has_ended and "ANTHROPIC_API_KEY" in call.end_reason
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_a_plivo_stream_in_l16_at_16_khz_runs_in_that_format_end_to_end(client, api, vendors, settings):
    llm, stt, tts = vendors
    settings.PLIVO_VERIFY_SIGNATURES = False
    bot = await sync_to_async(api.post)("Voicebot/", {"name": "Desk", "welcome_message": "Hello!"})
    call_uuid = str(uuid.uuid4())
    path = await sync_to_async(answer)(client, api, bot.json(), call_uuid)
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    plivo = PlivoStreamCodec("stream-1", PCM16_16K)
    await communicator.send_to(text_data=plivo.start(call_uuid))
    message = PlivoStreamCodec.parse_from_server(await communicator.receive_from(timeout=5))
    assert isinstance(message, PlayAudio) and (message.content_type, message.sample_rate) == ("audio/x-l16", 16000)
    assert message.audio.startswith(PCM16_PATTERN)
    await communicator.send_to(text_data=plivo.media(speech_pcm16(40)))
    await wait_for(lambda: stt.streams and stt.streams[0].audio_bytes > 0)
    assert (stt.streams[0].query["encoding"], stt.streams[0].query["sample_rate"]) == ("linear16", "16000")
    await communicator.send_to(text_data=plivo.stop(call_uuid))
    await communicator.disconnect()
    assert (await Call.objects.aget(call_uuid=call_uuid)).has_ended
