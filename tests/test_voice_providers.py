"""The vendor adapters of the call pipeline, through the real SDKs, against protocol-accurate fakes on 127.0.0.1.

No database and no Django.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fakes.cartesia_server import AUDIO_PATTERN, FakeCartesia, speech_audio
from tests.fakes.deepgram_server import FakeDeepgram, silence, speech
from tests.fakes.deepgram_tts_server import FakeAura
from voicebots.providers.cartesia_tts import CartesiaTTS
from voicebots.providers.deepgram_stt import DeepgramSTT, _to_event
from voicebots.providers.deepgram_tts import DeepgramAuraTTS, aura_model
from voicebots.voice.ports import (
    SegmentDone,
    SpeechAudio,
    SpeechStarted,
    SpeechToTextError,
    TextToSpeechError,
    Transcript,
    UtteranceEnd,
    WordTimes,
)

FRAME = 160
# Audio streams at its real pace, and the fakes keep their vendors' timing, on a virtual clock
# (tests/virtual_time.py): the seconds pass without real waiting.
pytestmark = pytest.mark.virtual_time


async def stream_in_real_time(stt: DeepgramSTT, audio: bytes) -> None:
    for offset in range(0, len(audio), FRAME):
        await stt.send_audio(audio[offset:offset + FRAME])
        await asyncio.sleep(0.02)


async def collect(stt: DeepgramSTT, into: list[Any]) -> None:
    async for event in stt.events():
        into.append(event)


async def wait_until(condition: Any, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# --- Deepgram live STT ------------------------------------------------------------------------------


def test_deepgram_messages_that_are_malformed_or_carry_nothing_are_skipped(caplog):
    assert _to_event("not json") is None
    assert _to_event('{"type": "Results", "channel": {}}') is None
    assert _to_event('{"type": "SpeechStarted"}') is None
    assert "malformed" in caplog.text
    assert _to_event('{"type": "Metadata", "request_id": "x"}') is None
    empty = _to_event('{"type": "Results", "is_final": true, "start": 1.5, "duration": 0.5, '
                      '"channel": {"alternatives": []}}')
    assert empty.text == "" and empty.is_final and empty.end_s == 2.0


async def test_deepgram_stt_sends_the_call_settings_and_transcribes_each_burst_of_speech_in_order():
    async with FakeDeepgram(["Hello there.", "Book a table for two."]) as fake:
        stt = DeepgramSTT(fake.api_key, websocket_url=fake.ws_url, endpointing_ms=200, utterance_end_ms=600)
        await stt.connect()
        events: list[Any] = []
        reader = asyncio.create_task(collect(stt, events))
        await stream_in_real_time(stt, speech(400) + silence(900) + speech(600) + silence(900))
        await stt.aclose()
        await asyncio.wait_for(reader, 2)

    stream = fake.streams[0]
    assert stream.query == {"model": "nova-3", "language": "en", "encoding": "mulaw", "sample_rate": "8000",
                            "channels": "1", "interim_results": "true", "endpointing": "200",
                            "utterance_end_ms": "600", "vad_events": "true", "smart_format": "true",
                            "punctuate": "true"}
    assert stream.headers["authorization"] == "Token test-key"
    assert "sec-websocket-extensions" not in stream.headers  # no permessage-deflate on 50 frames a second
    finals = [event.text for event in events if isinstance(event, Transcript) and event.speech_final]
    assert finals == ["Hello there.", "Book a table for two."]
    kinds = [type(event).__name__ for event in events]
    assert kinds[0] == "SpeechStarted"
    first_final = kinds.index("Transcript", 1)
    assert isinstance(events[first_final], Transcript) and not events[first_final].is_final  # interim first
    assert kinds.count("SpeechStarted") == 2 and kinds.count("UtteranceEnd") == 2
    speech_started = [event for event in events if isinstance(event, SpeechStarted)]
    assert speech_started[1].at_s == pytest.approx(1.3, abs=0.05)  # on the audio clock
    utterance_ends = [event for event in events if isinstance(event, UtteranceEnd)]
    assert utterance_ends[0].last_word_end_s == pytest.approx(0.4, abs=0.05)
    assert stream.message_types()[-1] == "CloseStream"
    assert stream.close_code == 1000 and stream.sent_types()[-1] == "Metadata"


async def test_the_deepgram_fakes_first_interim_comes_as_far_into_the_speech_as_asked():
    """bench.bargein runs the fake at Deepgram's live cadence: the first words some hundreds of ms into speech."""
    firsts = {}
    for delay_ms in (None, 500):
        async with FakeDeepgram(["Wait, I have a question about my booking."], first_interim_ms=delay_ms) as fake:
            stt = DeepgramSTT(fake.api_key, websocket_url=fake.ws_url, endpointing_ms=300)
            await stt.connect()
            await stream_in_real_time(stt, silence(200) + speech(900) + silence(400))
            await stt.aclose()
        sent = fake.streams[0].sent
        interims = [message for message in sent if message["type"] == "Results" and not message["is_final"]]
        # The audio clock of a result is its end: the first interim's end is how far into the speech it came.
        firsts[delay_ms] = interims[0]["start"] + interims[0]["duration"] - 0.2
        assert interims[-1]["channel"]["alternatives"][0]["transcript"].startswith("Wait,")
    assert firsts[None] == pytest.approx(0.1, abs=0.03)  # after `interim_every_ms` of speech, as before
    assert firsts[500] == pytest.approx(0.5, abs=0.03)


async def test_deepgram_stt_sends_keepalive_only_while_no_audio_flows():
    async with FakeDeepgram() as fake:
        stt = DeepgramSTT(fake.api_key, websocket_url=fake.ws_url, keepalive_s=0.2)
        await stt.connect()
        await stream_in_real_time(stt, silence(600))
        assert "KeepAlive" not in fake.streams[0].message_types()
        await asyncio.sleep(0.75)
        keepalives = fake.streams[0].message_types().count("KeepAlive")
        await stt.aclose()
    assert 2 <= keepalives <= 4


async def test_deepgram_closes_an_idle_stream_that_gets_no_keepalive():
    async with FakeDeepgram(idle_timeout_s=0.3) as fake:
        quiet = DeepgramSTT(fake.api_key, websocket_url=fake.ws_url, keepalive_s=10)
        kept = DeepgramSTT(fake.api_key, websocket_url=fake.ws_url, keepalive_s=0.1)
        await quiet.connect()
        await kept.connect()
        with pytest.raises(SpeechToTextError, match="1011"):
            await asyncio.wait_for(collect(quiet, []), 2)
        assert fake.streams[1].close_code is None  # still open thanks to KeepAlive
        await quiet.aclose()
        await kept.aclose()
    assert fake.streams[0].close_code == 1011 and fake.streams[1].close_code == 1000


async def test_deepgram_stt_finalize_returns_the_words_so_far_as_a_final():
    async with FakeDeepgram(["Wait a second please."]) as fake:
        stt = DeepgramSTT(fake.api_key, websocket_url=fake.ws_url, endpointing_ms=2000)
        await stt.connect()
        events: list[Any] = []
        reader = asyncio.create_task(collect(stt, events))
        await stream_in_real_time(stt, speech(300) + silence(100))
        await stt.finalize()
        await wait_until(lambda: any(isinstance(e, Transcript) and e.from_finalize for e in events))
        await stt.aclose()
        await asyncio.wait_for(reader, 2)
    final = next(e for e in events if isinstance(e, Transcript) and e.from_finalize)
    assert final.is_final and final.text == "Wait a second please."
    assert "Finalize" in fake.streams[0].message_types()


async def test_deepgram_stt_reports_a_dropped_stream_and_can_connect_again():
    async with FakeDeepgram(["One.", "Two."]) as fake:
        stt = DeepgramSTT(fake.api_key, websocket_url=fake.ws_url)
        await stt.connect()
        events: list[Any] = []
        reader = asyncio.create_task(collect(stt, events))
        await stream_in_real_time(stt, silence(100))
        await fake.drop()
        with pytest.raises(SpeechToTextError):
            await asyncio.wait_for(reader, 2)
        with pytest.raises(SpeechToTextError):
            await stt.send_audio(silence(20))

        await stt.connect()
        reader = asyncio.create_task(collect(stt, events))
        await stream_in_real_time(stt, speech(300) + silence(500))
        await stt.aclose()
        await asyncio.wait_for(reader, 2)
    assert len(fake.streams) == 2 and fake.streams[0].close_code == 1011
    assert [e.text for e in events if isinstance(e, Transcript) and e.speech_final] == ["One."]


async def test_deepgram_stt_rejected_key_is_a_connection_error():
    async with FakeDeepgram() as fake:
        stt = DeepgramSTT("wrong-key", websocket_url=fake.ws_url)
        with pytest.raises(SpeechToTextError, match=r"rejected the API key \(HTTP 401\)"):
            await stt.connect()
        await stt.aclose()
    assert [status for _, status in fake.rejected] == [401] and not fake.streams


# --- Cartesia TTS -----------------------------------------------------------------------------------


def cartesia(fake: FakeCartesia, voice: str = "voice-1") -> CartesiaTTS:
    return CartesiaTTS(fake.api_key, voice, base_url=fake.http_url, websocket_base_url=fake.ws_url)


async def drain(turn: Any) -> list[Any]:
    return [event async for event in turn.events()]


async def test_cartesia_speaks_pushed_segments_in_one_context_with_a_boundary_per_segment():
    async with FakeCartesia() as fake:
        tts = cartesia(fake)
        await tts.connect()
        turn = tts.start_turn()
        await turn.push("Sure, ")
        await turn.push("I can help with that.")
        await turn.finish()
        events = await drain(turn)
        await tts.aclose()

    word_times = [event for event in events if isinstance(event, WordTimes)]
    events = [event for event in events if not isinstance(event, WordTimes)]
    boundaries = [index for index, event in enumerate(events) if isinstance(event, SegmentDone)]
    assert [events[i].index for i in boundaries] == [0, 1]
    # Words are placed from the start of the context's audio, across its continuations (60 ms a character here).
    assert [word for times in word_times for word in times.words] == ["Sure,", "I", "can", "help", "with", "that."]
    assert word_times[1].starts[:2] == pytest.approx((0.36, 0.48)) and word_times[0].ends[0] == pytest.approx(0.3)
    first = b"".join(e.audio for e in events[:boundaries[0]])
    second = b"".join(e.audio for e in events[boundaries[0] + 1:boundaries[1]])
    assert first == speech_audio("Sure, ") and second == speech_audio("I can help with that.")
    assert set(first) <= set(AUDIO_PATTERN)

    assert len(fake.handshakes) == 1
    headers = fake.handshakes[0].headers
    assert headers["authorization"] == "Bearer test-key" and headers["cartesia-version"]
    assert "sec-websocket-extensions" not in headers
    contexts = {request["context_id"] for request in fake.requests}
    assert contexts == {turn.context_id}
    first_request = fake.requests[0]
    assert first_request["output_format"] == {"container": "raw", "encoding": "pcm_mulaw", "sample_rate": 8000}
    assert first_request["voice"] == {"mode": "id", "id": "voice-1"} and first_request["model_id"] == "sonic-3"
    assert first_request["max_buffer_delay_ms"] == 0 and first_request["continue"] is True
    assert first_request["add_timestamps"] is True
    assert [(r["transcript"], r.get("flush", False), r["continue"]) for r in fake.requests] == [
        ("Sure, ", False, True), ("", True, True), ("I can help with that.", False, True), ("", True, True),
        ("", False, False)]
    assert fake.transcripts[turn.context_id] == "Sure, I can help with that."


async def test_cartesia_cancel_stops_the_context_and_later_turns_use_the_same_socket():
    async with FakeCartesia(chunk_bytes=160, chunk_interval_s=0.01) as fake:
        tts = cartesia(fake)
        await tts.connect()
        turn = tts.start_turn()
        await turn.push("This is a long sentence that would take a while to say.")
        received = 0
        async for event in turn.events():
            received += 1
            if received == 3:
                break
        await turn.cancel()
        await asyncio.sleep(0.1)
        sent_after_cancel = fake.audio_sent[turn.context_id]

        second = tts.start_turn()
        await second.push("Okay.")
        await second.finish()
        events = await drain(second)
        await tts.aclose()

    assert fake.cancelled == [turn.context_id]
    assert sent_after_cancel < len(speech_audio("This is a long sentence that would take a while to say.")) / 2
    assert b"".join(e.audio for e in events if isinstance(e, SpeechAudio)) == speech_audio("Okay.")
    assert len(fake.handshakes) == 1


async def test_cartesia_error_frame_and_dropped_socket_fail_the_turn_then_it_reconnects():
    async with FakeCartesia(chunk_bytes=160, chunk_interval_s=0.01) as fake:
        tts = cartesia(fake)
        await tts.connect()
        fake.fail_contexts = 1
        failing = tts.start_turn()
        await failing.push("Hello.")
        with pytest.raises(TextToSpeechError, match="Internal error"):
            await drain(failing)

        dropped = tts.start_turn()
        await dropped.push("A sentence long enough to be cut off.")
        events = dropped.events()
        while isinstance(first := await anext(events), WordTimes):
            pass
        assert isinstance(first, SpeechAudio)
        await fake.drop()
        with pytest.raises(TextToSpeechError):
            async for _ in events:
                pass

        await tts.connect()
        again = tts.start_turn()
        await again.push("Back.")
        await again.finish()
        audio = b"".join(e.audio for e in await drain(again) if isinstance(e, SpeechAudio))
        await tts.aclose()
    assert audio == speech_audio("Back.") and len(fake.handshakes) == 2


async def test_cartesia_unreachable_is_a_voice_error():
    tts = CartesiaTTS("test-key", "voice-1", base_url="http://127.0.0.1:9", websocket_base_url="ws://127.0.0.1:9")
    with pytest.raises(TextToSpeechError, match="could not be reached"):
        await tts.connect()
    await tts.aclose()


# --- Deepgram Aura TTS ------------------------------------------------------------------------------


def test_aura_voice_names_map_to_models_the_sdk_lists():
    assert aura_model("asteria") == "aura-2-asteria-en"
    assert aura_model("Zeus") == "aura-2-zeus-en"
    assert aura_model("angus") == "aura-angus-en"
    assert aura_model("helios") == "aura-helios-en"
    assert aura_model("aura-2-thalia-en") == "aura-2-thalia-en"
    with pytest.raises(ValueError):
        aura_model("nobody")


async def test_aura_speaks_each_segment_as_a_streamed_mulaw_request():
    async with FakeAura() as fake:
        tts = DeepgramAuraTTS(fake.api_key, "orion", base_url=fake.url)
        await tts.connect()
        turn = tts.start_turn()
        await turn.push("Hello there. ")
        await turn.push("How can I help?")
        await turn.finish()
        events = await drain(turn)
        await tts.aclose()

    boundaries = [index for index, event in enumerate(events) if isinstance(event, SegmentDone)]
    assert len(boundaries) == 2
    assert b"".join(e.audio for e in events[:boundaries[0]]) == speech_audio("Hello there.")
    assert b"".join(e.audio for e in events[boundaries[0] + 1:boundaries[1]]) == speech_audio("How can I help?")
    assert [request.body["text"] for request in fake.requests] == ["Hello there.", "How can I help?"]
    assert fake.requests[0].query == {"model": "aura-2-orion-en", "encoding": "mulaw", "sample_rate": "8000",
                                      "container": "none"}
    assert fake.requests[0].headers["authorization"] == "Token test-key"


async def test_aura_rejection_is_a_voice_error():
    async with FakeAura() as fake:
        tts = DeepgramAuraTTS("wrong-key", "luna", base_url=fake.url)
        turn = tts.start_turn()
        await turn.push("Hi.")
        await turn.finish()
        with pytest.raises(TextToSpeechError, match="401"):
            await drain(turn)
        await tts.aclose()
