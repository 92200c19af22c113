"""The call pipeline (voicebots/voice): its parts on their own, then whole calls end to end.

End to end: a fake phone transport that plays audio in real time and acknowledges checkpoints as Plivo does,
a caller streaming real mu-law audio, the real Deepgram and Cartesia (and Aura) adapters against their fakes on
127.0.0.1, and the conversation engine with a scripted LLM (or the real Anthropic SDK against its fake).
No database and no Django.
"""
from __future__ import annotations

import asyncio
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Callable

import numpy as np
import pytest

from tests.fakes.anthropic_server import FakeAnthropic, Text, Turn
from tests.fakes.cartesia_server import AUDIO_PATTERN, FakeCartesia, speech_audio
from tests.fakes.deepgram_server import FakeDeepgram, speech
from tests.fakes.deepgram_tts_server import FakeAura
from voicebots.conversation import (
    BotConfig,
    ConversationEngine,
    LLMError,
    LLMRequest,
    Message,
    MessageDone,
    TextDelta,
)
from voicebots.conversation.history import opening_history
from voicebots.conversation.ports import ToolCall, ToolCallRecord, ToolResult, TurnResult
from voicebots.providers.anthropic_llm import AnthropicLLM
from voicebots.providers.cartesia_tts import CartesiaTTS
from voicebots.providers.deepgram_stt import DeepgramSTT
from voicebots.providers.deepgram_tts import DeepgramAuraTTS
from voicebots.core import clock
from voicebots.voice import Announcement, BaseCallObserver, CallSession, SessionOptions, TurnRecord
from voicebots.voice.audio import FRAME_BYTES, MULAW_8K, MULAW_SILENCE, mulaw_to_pcm16, pcm16_to_mulaw, rms, silence
from voicebots.voice.heard import history_after_greeting, history_after_reply
from voicebots.voice.playout import Playout
from voicebots.voice.recorded import recorded_line
from voicebots.voice.ports import SpeechStarted, Transcript, UtteranceEnd
from voicebots.voice.segmenter import Segmenter
from voicebots.voice.session import DEFAULT_APOLOGY
from voicebots.voice.timeline import Timeline
from voicebots.voice.turns import CallerSpeaking, CallerTurnEnded, TurnTaker

# The session's waits (silences, timeouts, playback) pass on a virtual clock: tests/virtual_time.py.
pytestmark = pytest.mark.virtual_time

MS_PER_CHAR = 20  # the fakes' speech: a third of real speed keeps the tests short
CONFIG = BotConfig(bot_id="bot-1", name="Trattoria", prompt="You answer calls for Trattoria.", model="claude-haiku-5-5")


# --- Test doubles -----------------------------------------------------------------------------------


class FakeTransport:
    """The phone leg: records what it is sent and plays it in real time, acknowledging each checkpoint once
    the audio before it has played (as Plivo's playedStream does); `clear` drops what is still queued."""

    input_format = output_format = MULAW_8K

    def __init__(self) -> None:
        self.handler: Any = None
        self.frames: list[tuple[float, bytes]] = []
        self.checkpoints: list[tuple[float, str]] = []
        self.clears: list[float] = []
        self.played: list[str] = []
        self.hung_up = False
        self._play_end = 0.0
        self._pending_acks: list[asyncio.TimerHandle] = []

    async def send_audio(self, frame: bytes) -> None:
        assert len(frame) == FRAME_BYTES
        now = clock.now()
        self.frames.append((now, frame))
        self._play_end = max(self._play_end, now) + 0.02

    async def checkpoint(self, name: str) -> None:
        now = clock.now()
        self.checkpoints.append((now, name))
        loop = asyncio.get_running_loop()
        self._pending_acks.append(loop.call_later(max(0.0, self._play_end - now), self._ack, name))

    def _ack(self, name: str) -> None:
        self.played.append(name)
        self.handler.on_checkpoint_played(name)

    async def clear(self) -> None:
        self.clears.append(clock.now())
        for handle in self._pending_acks:
            handle.cancel()
        self._pending_acks.clear()
        self._play_end = clock.now()
        if self.handler is not None:
            asyncio.get_running_loop().call_soon(self.handler.on_audio_cleared)

    async def hang_up(self) -> None:
        self.hung_up = True

    def checkpoint_names(self) -> list[str]:
        return [name for _, name in self.checkpoints]

    def audio(self) -> bytes:
        return b"".join(frame for _, frame in self.frames)


class FakeCaller:
    """Streams the caller's audio in real time, 20 ms at a time: line silence, and a tone while speaking."""

    def __init__(self, session: CallSession) -> None:
        self._session = session
        self._speech = bytearray()
        self._done = asyncio.Event()
        self.speech_ended_at: float | None = None

    async def run(self) -> None:
        next_at = clock.now()
        while True:
            if self._speech:
                frame = bytes(self._speech[:FRAME_BYTES])
                del self._speech[:FRAME_BYTES]
                if not self._speech:
                    self.speech_ended_at = clock.now()
                    self._done.set()
            else:
                frame = silence(20)
            self._session.feed_audio(frame)
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - clock.now()))

    async def say(self, ms: int) -> None:
        self.say_later(ms)
        await self._done.wait()

    def say_later(self, ms: int) -> None:
        """Start saying `ms` of speech (after what is still to be said) without waiting for its end."""
        self._done.clear()
        self._speech.extend(speech(ms))


@dataclass
class Reply:
    fragments: list[str]
    ttft_s: float = 0.05
    gap_s: float = 0.02
    error: LLMError | None = None


class ScriptedLLM:
    """The LLM port with scripted replies: first token after `ttft_s`, then a fragment every `gap_s`."""

    def __init__(self, *replies: Reply) -> None:
        self._replies = deque(replies)
        self.requests: list[LLMRequest] = []
        self.finished_at: list[float] = []
        self.closed_early = 0

    async def stream(self, request: LLMRequest) -> AsyncIterator[Any]:
        self.requests.append(replace(request, messages=list(request.messages)))  # the engine appends to it later
        reply = self._replies.popleft() if self._replies else Reply(["Okay."])
        completed = False
        try:
            await asyncio.sleep(reply.ttft_s)
            for index, fragment in enumerate(reply.fragments):
                if index:
                    await asyncio.sleep(reply.gap_s)
                yield TextDelta(fragment)
            if reply.error is not None:
                raise reply.error
            completed = True
            self.finished_at.append(clock.now())
            yield MessageDone("end_turn", {"input_tokens": 10, "output_tokens": 5},
                              Message.assistant("".join(reply.fragments)))
        finally:
            if not completed and reply.error is None:
                self.closed_early += 1


class Recorder(BaseCallObserver):
    def __init__(self) -> None:
        self.turns: list[TurnRecord] = []
        self.incidents: list[tuple[str, str]] = []
        self.digits: list[str] = []

    async def on_turn(self, record: TurnRecord) -> None:
        self.turns.append(record)

    async def on_incident(self, kind: str, detail: str) -> None:
        self.incidents.append((kind, detail))

    async def on_dtmf(self, digit: str) -> None:
        self.digits.append(digit)

    def incident_kinds(self) -> list[str]:
        return [kind for kind, _ in self.incidents]


class MemoryCache:
    def __init__(self) -> None:
        self.audio: dict[tuple[str, str, str], bytes] = {}

    async def get(self, bot_id: str, voice: str, text: str) -> bytes | None:
        return self.audio.get((bot_id, voice, text))

    async def put(self, bot_id: str, voice: str, text: str, audio: bytes) -> None:
        self.audio[(bot_id, voice, text)] = audio


@dataclass
class Call:
    session: CallSession
    transport: FakeTransport
    caller: FakeCaller
    recorder: Recorder
    deepgram: FakeDeepgram
    cartesia: FakeCartesia
    aura: FakeAura
    started_at: float
    tasks_before: set[asyncio.Task[Any]] = field(default_factory=set)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


@asynccontextmanager
async def running_call(llm: Any, transcripts: list[str], *, welcome: str = "", cache: MemoryCache | None = None,
                       fallback: bool = False, cartesia_delay_s: float = 0.0,
                       options: dict[str, Any] | None = None) -> AsyncIterator[Call]:
    async with (FakeDeepgram(transcripts) as deepgram,
                FakeCartesia(ms_per_char=MS_PER_CHAR, first_chunk_delay_s=cartesia_delay_s) as cartesia,
                FakeAura(ms_per_char=MS_PER_CHAR) as aura):
        tasks_before = asyncio.all_tasks()
        transport = FakeTransport()
        recorder = Recorder()
        session = CallSession(
            config=CONFIG, engine=ConversationEngine(llm), transport=transport,
            stt=DeepgramSTT(deepgram.api_key, websocket_url=deepgram.ws_url),
            tts=CartesiaTTS(cartesia.api_key, "voice-1", base_url=cartesia.http_url,
                            websocket_base_url=cartesia.ws_url),
            fallback_tts=DeepgramAuraTTS(aura.api_key, "asteria", base_url=aura.url) if fallback else None,
            audio_cache=cache, observer=recorder,
            options=SessionOptions(welcome_message=welcome, **(options or {})))
        transport.handler = session
        caller = FakeCaller(session)
        started_at = clock.now()
        await session.start()
        caller_task = asyncio.create_task(caller.run())
        try:
            yield Call(session, transport, caller, recorder, deepgram, cartesia, aura, started_at, tasks_before)
        finally:
            caller_task.cancel()
            await asyncio.gather(caller_task, return_exceptions=True)
            await session.stop()


def frames_for(text: str) -> int:
    return -(-len(speech_audio(text, MS_PER_CHAR)) // FRAME_BYTES)


# --- Audio --------------------------------------------------------------------------------------------


def test_mulaw_conversion_matches_g711():
    codes = bytes(range(256))
    samples = mulaw_to_pcm16(codes)
    assert samples[0xFF] == 0 and samples[0x7F] == 0
    assert samples[0x00] == -32124 and samples[0x80] == 32124
    assert samples[0xF0] == 8 * 15 + 4 - 4 and samples[0x70] == -(samples[0xF0])
    # Every code but the second zero (0x7F) survives a round trip.
    assert pcm16_to_mulaw(samples) == bytes(code if code != 0x7F else 0xFF for code in codes)
    assert pcm16_to_mulaw(np.array([0, 40000, -40000])) == bytes([0xFF, 0x80, 0x00])


def test_energy_and_silence_helpers():
    assert silence(20) == bytes([MULAW_SILENCE]) * FRAME_BYTES
    assert rms(silence(20)) == 0.0 and rms(b"") == 0.0
    assert 5000 < rms(speech(20)) < 6000  # a tone of amplitude 8000: RMS 8000 / sqrt(2)


# --- Segmenter ----------------------------------------------------------------------------------------


def segment_stream(fragments: list[str]) -> list[str]:
    segmenter = Segmenter()
    segments = [segment for fragment in fragments for segment in segmenter.feed(fragment)]
    if (rest := segmenter.flush()) is not None:
        segments.append(rest)
    return segments


def test_segmenter_cuts_the_first_segment_at_the_first_clause_then_whole_sentences():
    fragments = ["Sure", ", I can", " help with that", ". We open at 9.30 ", "every day, ", "and close at ten",
                 ". See you soon!"]
    segments = segment_stream(fragments)
    assert segments == ["Sure, ", "I can help with that. We open at 9.30 every day, and close at ten. ",
                        "See you soon!"]
    assert "".join(segments) == "".join(fragments)
    assert Segmenter().feed("Okay,") == ["Okay,"]  # a clause end after a word needs no lookahead
    assert Segmenter().feed("Hi,") == []  # too short to stand alone


def test_segmenter_waits_for_the_next_character_and_skips_numbers_and_abbreviations():
    segmenter = Segmenter()
    assert segmenter.feed("Dr. Smith will see you at 3.") == []  # "Dr." is not an end; "3." may go on
    assert segmenter.feed("5 tomorrow, then") == ["Dr. Smith will see you at 3.5 tomorrow, "]
    assert segmenter.feed(" we are done.") == []
    assert segmenter.flush() == "then we are done."
    assert segmenter.flush() is None


def test_segmenter_cuts_a_long_first_segment_at_a_word_boundary():
    segmenter = Segmenter()
    text = "Well let me think about what the best option would be for a group of your size"
    segments = segmenter.feed(text)
    assert segments == ["Well let me think about "]
    assert segments[0] + segmenter.flush() == text


# --- Turn taking --------------------------------------------------------------------------------------


def test_turn_ends_on_speech_final_with_all_finals_of_the_utterance():
    taker = TurnTaker()
    assert taker.on_event(SpeechStarted(0.1)) == []
    assert taker.on_event(Transcript("I'd like", is_final=False)) == [CallerSpeaking(2)]
    assert taker.on_event(Transcript("I'd like a table", is_final=True)) == [CallerSpeaking(4)]
    assert taker.on_event(Transcript("for two", is_final=False)) == [CallerSpeaking(6)]
    assert taker.on_event(Transcript("for two.", is_final=True, speech_final=True)) == [
        CallerSpeaking(6), CallerTurnEnded("I'd like a table for two.")]
    assert taker.on_event(UtteranceEnd(2.0)) == []  # that utterance is already answered


def test_turn_ends_on_utterance_end_with_the_unfinalized_interim_and_never_on_silence():
    taker = TurnTaker()
    assert taker.on_event(Transcript("", is_final=True, speech_final=True)) == []
    taker.on_event(Transcript("Hello", is_final=True))
    taker.on_event(Transcript("are you there", is_final=False))
    assert taker.has_unfinalized_words
    assert taker.on_event(UtteranceEnd(1.5)) == [CallerTurnEnded("Hello are you there")]
    assert taker.on_event(UtteranceEnd(3.0)) == []
    taker.on_event(Transcript("Wait", is_final=False))
    assert taker.on_event(Transcript("Wait.", is_final=True, from_finalize=True)) == [
        CallerSpeaking(1), CallerTurnEnded("Wait.")]


# --- Timeline, heard history, playout ------------------------------------------------------------------


def test_timeline_splits_latency_into_vendor_delays_and_platform_share():
    timeline = Timeline(started=10.0)
    for stamp, at in [("speech_ended", 10.0), ("transcript_final", 10.45), ("llm_request_sent", 10.46),
                      ("first_token", 10.81), ("first_segment_sent", 10.85), ("first_tts_audio", 10.94),
                      ("first_audio_sent", 10.95)]:
        timeline.mark(stamp, at)
    timeline.mark("first_token", 99.0)  # a stamp is set once
    timings = timeline.timings()
    assert timings["latency_ms"] == 950.0 and timings["first_token_at_ms"] == 810.0
    assert (timings["stt_ms"], timings["llm_ms"], timings["tts_ms"]) == (450.0, 350.0, 90.0)
    assert timings["platform_ms"] == 60.0
    with pytest.raises(ValueError):
        timeline.mark("nonsense")


def test_history_keeps_only_the_heard_part_of_a_reply():
    prior = opening_history("Hi, Trattoria here.")
    assert history_after_reply(prior, "Hours?", "We open at nine. And close at ten.", "We open at nine. ",
                               None)[-2:] == [Message.user("Hours?"), Message.assistant("We open at nine.")]
    assert history_after_reply(prior, "Hours?", "We open at nine.", "", None)[-1] == Message.user("Hours?")

    # A finished turn with a tool round: the tool call stays, the final message is cut to what was heard.
    spoken = "Let me check. It's booked for seven. Anything else?"
    call = ToolCall("t1", "book", {})
    tool_round = [Message.assistant("Let me check.", tool_calls=[call]),
                  Message.user(tool_results=[ToolResult("t1", "ok")])]
    result_history = [*prior, Message.user("Book seven."), *tool_round,
                      Message.assistant("It's booked for seven. Anything else?")]
    result = TurnResult(text=spoken, stop_reason="end_turn", tool_calls=[ToolCallRecord(call, ToolResult("t1", "ok"))],
                        passages=[], timings={}, history=result_history)
    cut = history_after_reply(prior, "Book seven.", spoken, "Let me check. It's booked for seven. ", result)
    assert cut[:-1] == result_history[:-1] and cut[-1] == Message.assistant("It's booked for seven.")
    dropped = history_after_reply(prior, "Book seven.", spoken, "Let me check. ", result)
    assert dropped == result_history[:-1]
    assert history_after_reply(prior, "Book seven.", spoken, spoken, result) == result_history
    assert history_after_greeting("") == [] and history_after_greeting("Hi, ") == opening_history("Hi,")


async def test_playout_sends_whole_frames_pads_segment_ends_and_tracks_acks():
    transport = FakeTransport()
    playout = Playout(transport)
    assert await playout.play(1, b"\x10" * 250) == 1  # 90 bytes wait for more
    assert await playout.play(1, b"\x10" * 100) == 1
    await playout.end_segment(1, 0, "Hello. ")
    await playout.play(1, b"\x20" * 160)
    await playout.end_segment(1, 1, "Bye.")
    frames = [frame for _, frame in transport.frames]
    assert len(frames) == 4 and frames[2] == b"\x10" * 30 + bytes([MULAW_SILENCE]) * 130
    assert transport.checkpoint_names() == ["turn1-seg0", "turn1-seg1"]
    assert playout.is_playing(1) and playout.heard_text(1) == ""
    playout.on_played("turn1-seg0")
    assert playout.heard_text(1) == "Hello. " and playout.is_playing(1)
    await playout.interrupt(1)
    assert transport.clears and await playout.play(1, b"\x10" * 320) == 0
    assert playout.heard_text(1) == "Hello. "


# --- Whole calls --------------------------------------------------------------------------------------

WELCOME = "Hello, thanks for calling Trattoria. How can I help?"


async def test_cached_greeting_is_sent_at_once_and_seeds_the_history():
    cache = MemoryCache()
    greeting_audio = speech_audio(WELCOME, MS_PER_CHAR)
    await cache.put("bot-1", "voice-1", WELCOME, greeting_audio)
    async with running_call(ScriptedLLM(), [], welcome=WELCOME, cache=cache) as call:
        await wait_until(lambda: call.recorder.turns)
        first_frame_at = call.transport.frames[0][0]
        assert first_frame_at - call.started_at < 0.05
        assert call.transport.audio().startswith(greeting_audio)
        assert call.transport.checkpoint_names() == ["turn0-seg0"]
        assert call.cartesia.transcripts == {}  # no synthesis needed
        record = call.recorder.turns[0]
        assert (record.kind, record.bot_text, record.interrupted) == ("greeting", WELCOME, False)
        assert record.timings["first_audio_sent_at_ms"] < 50
        assert call.session.history == opening_history(WELCOME)


async def test_greeting_without_cache_is_synthesized_then_cached():
    cache = MemoryCache()
    async with running_call(ScriptedLLM(), [], welcome=WELCOME, cache=cache) as call:
        await wait_until(lambda: call.recorder.turns)
        assert list(call.cartesia.transcripts.values()) == [WELCOME]
        segments = segment_stream([WELCOME])
        assert segments == ["Hello, ", "thanks for calling Trattoria. How can I help?"]
        assert call.transport.checkpoint_names() == ["turn0-seg0", "turn0-seg1"]
    assert cache.audio[("bot-1", "voice-1", WELCOME)] == b"".join(speech_audio(s, MS_PER_CHAR) for s in segments)


async def test_a_question_is_answered_while_the_model_is_still_writing():
    llm = ScriptedLLM(Reply(["Sure", ", we are open ", "until ten tonight", ". Would you like ",
                             "to book a table?"], ttft_s=0.1, gap_s=0.15))
    async with running_call(llm, ["What time do you close tonight?"]) as call:
        await call.caller.say(700)
        await wait_until(lambda: call.recorder.turns, timeout=8)
        assert llm.finished_at and call.transport.frames[0][0] < llm.finished_at[0]

        segments = ["Sure, ", "we are open until ten tonight. ", "Would you like to book a table?"]
        assert call.transport.checkpoint_names() == ["turn0-seg0", "turn0-seg1", "turn0-seg2"]
        assert len(call.transport.frames) == sum(frames_for(segment) for segment in segments)
        assert set(call.transport.audio()) <= set(AUDIO_PATTERN) | {MULAW_SILENCE}
        context_id, transcript = next(iter(call.cartesia.transcripts.items()))
        assert transcript == "".join(segments)

        record = call.recorder.turns[0]
        assert record.caller_text == "What time do you close tonight?"
        assert record.bot_text == "".join(segments).strip() and not record.interrupted
        stamps = ["transcript_final_at_ms", "llm_request_sent_at_ms", "first_token_at_ms", "first_segment_sent_at_ms",
                  "first_tts_audio_at_ms", "first_audio_sent_at_ms", "last_audio_sent_at_ms"]
        assert all(record.timings[stamp] is not None for stamp in stamps), record.timings
        offsets = [record.timings[stamp] for stamp in stamps[:-1]]
        assert offsets == sorted(offsets) and offsets[0] >= 250  # endpointing waits 300 ms of silence
        assert record.timings["llm_ms"] >= 100  # at least the model's scripted time to first token
        assert record.timings["platform_ms"] is not None and record.timings["platform_ms"] >= 0
        assert call.session.history == [Message.user("What time do you close tonight?"),
                                        Message.assistant("".join(segments).strip())]
        assert llm.requests[0].messages[-1] == Message.user("What time do you close tonight?")


LONG_REPLY = ["Sure, ", "we have tables at six, seven, and eight o'clock tonight. ", "We also have a terrace ",
              "with a lovely view of the river. ", "Which time would you like? "]


async def test_barge_in_cancels_the_reply_clears_playback_and_keeps_only_what_was_heard():
    llm = ScriptedLLM(Reply(LONG_REPLY, ttft_s=0.05, gap_s=0.3), Reply(["Seven it is."]))
    async with running_call(llm, ["Do you have a table tonight?", "Seven please.", ]) as call:
        await call.caller.say(600)
        await wait_until(lambda: "turn0-seg0" in call.transport.played)
        await call.caller.say(500)  # while the second sentence plays
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=8)

        interrupted, answer = call.recorder.turns
        heard = "Sure,"  # the first segment, up to the first clause end
        assert interrupted.interrupted and interrupted.bot_text == heard
        assert call.transport.clears and call.transport.clears[0] > call.transport.frames[0][0]
        assert llm.closed_early == 1  # the model stream was closed mid-reply
        first_context = next(iter(call.cartesia.transcripts))
        assert call.cartesia.cancelled == [first_context]
        assert (answer.caller_text, answer.bot_text) == ("Seven please.", "Seven it is.")
        assert call.session.history == [Message.user("Do you have a table tonight?"), Message.assistant(heard),
                                        Message.user("Seven please."), Message.assistant("Seven it is.")]


async def test_barge_in_after_the_reply_was_sent_cuts_the_reply_in_history_to_the_words_heard():
    llm = ScriptedLLM(Reply(LONG_REPLY, gap_s=0.0), Reply(["Sure."]))
    async with running_call(llm, ["Tables tonight?", "Stop."]) as call:
        await call.caller.say(600)
        await wait_until(lambda: "turn0-seg1" in call.transport.played)
        assert llm.finished_at  # the whole reply was sent long ago; the caller is still hearing it
        await call.caller.say(400)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=8)
        acknowledged = "Sure, we have tables at six, seven, and eight o'clock tonight."  # two segments
        heard = call.recorder.turns[0].bot_text
        assert call.recorder.turns[0].interrupted and heard.startswith(acknowledged)
        # The third segment was playing when the caller spoke: the words of it heard before the bot stopped.
        full = "".join(LONG_REPLY)
        assert full.startswith(heard) and full[len(heard)] == " " and len(heard) < len(acknowledged) + 12
        assert call.session.history[1] == Message.assistant(heard)
        assert llm.closed_early == 0


async def test_a_lost_stt_stream_is_reopened_and_the_call_goes_on():
    llm = ScriptedLLM(Reply(["First answer."]), Reply(["Second answer."]))
    async with running_call(llm, ["First question.", "Second question."]) as call:
        await call.caller.say(500)
        await wait_until(lambda: len(call.recorder.turns) == 1, timeout=8)
        await call.deepgram.drop()
        await wait_until(lambda: "stt_reconnected" in call.recorder.incident_kinds())
        await call.caller.say(500)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=8)
        assert [turn.bot_text for turn in call.recorder.turns] == ["First answer.", "Second answer."]
        assert len(call.deepgram.streams) == 2 and call.deepgram.streams[0].close_code == 1011


async def test_a_model_error_is_apologised_for_and_the_call_goes_on():
    llm = ScriptedLLM(Reply([], error=LLMError("The language model is overloaded right now.", retryable=True)),
                      Reply(["Yes, we are open."]))
    async with running_call(llm, ["Are you open?", "Are you open today?"]) as call:
        await call.caller.say(500)
        await wait_until(lambda: len(call.recorder.turns) == 1, timeout=8)
        apology = call.recorder.turns[0]
        assert apology.bot_text == DEFAULT_APOLOGY and apology.error == "The language model is overloaded right now."
        assert "llm_error" in call.recorder.incident_kinds()
        await call.caller.say(500)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=8)
        assert call.recorder.turns[1].bot_text == "Yes, we are open."
        assert [message.role for message in call.session.history] == ["user", "assistant", "user", "assistant"]


async def test_a_cached_apology_is_played_without_synthesis():
    cache = MemoryCache()
    await cache.put("bot-1", "voice-1", DEFAULT_APOLOGY, speech_audio(DEFAULT_APOLOGY, MS_PER_CHAR))
    llm = ScriptedLLM(Reply([], error=LLMError("The language model could not be reached.")))
    async with running_call(llm, ["Hello?"], cache=cache) as call:
        await call.caller.say(400)
        await wait_until(lambda: call.recorder.turns, timeout=8)
        assert call.recorder.turns[0].bot_text == DEFAULT_APOLOGY
        assert call.cartesia.transcripts == {} and call.transport.checkpoint_names() == ["turn0-seg0"]


async def test_a_failing_voice_is_replaced_by_the_fallback_voice():
    llm = ScriptedLLM(Reply(["Of course, ", "one moment."]))
    async with running_call(llm, ["Can you help me?"], fallback=True) as call:
        call.cartesia.fail_contexts = 1
        await call.caller.say(500)
        await wait_until(lambda: call.recorder.turns, timeout=8)
        assert call.recorder.turns[0].bot_text == "Of course, one moment."
        assert [request.body["text"] for request in call.aura.requests] == ["Of course,", "one moment."]
        assert "tts_fallback" in call.recorder.incident_kinds()
        assert len(call.transport.frames) == frames_for("Of course,") + frames_for("one moment.")


async def test_without_a_fallback_a_failing_voice_is_replaced_by_a_recorded_line_and_the_call_goes_on():
    llm = ScriptedLLM(Reply(["Hello there."]), Reply(["Now I can talk."]))
    trouble, recording = recorded_line("trouble")
    async with running_call(llm, ["Hi.", "Hello?"]) as call:
        call.cartesia.fail_contexts = 1
        await call.caller.say(400)
        await wait_until(lambda: call.recorder.turns, timeout=8)
        assert call.recorder.turns[0].bot_text == trouble
        assert call.transport.audio().startswith(recording)  # no voice: the recording, not silence
        assert {"tts_failed", "fallback_line"} <= set(call.recorder.incident_kinds())
        assert call.session.history[-1] == Message.assistant(trouble)
        await call.caller.say(400)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=8)
        assert call.recorder.turns[1].bot_text == "Now I can talk."


async def test_stop_mid_reply_closes_every_vendor_socket_and_leaves_no_task_behind():
    llm = ScriptedLLM(Reply(LONG_REPLY, gap_s=0.5))
    async with running_call(llm, ["Tell me everything."]) as call:
        await call.caller.say(400)
        await wait_until(lambda: call.transport.frames, timeout=8)
        stopping = clock.now()
        await call.session.stop()
        assert clock.now() - stopping < 1.0
        assert llm.closed_early == 1
        stream = call.deepgram.streams[0]
        assert stream.message_types()[-1] == "CloseStream"
        await wait_until(lambda: stream.close_code == 1000, timeout=1)
        await wait_until(lambda: not call.cartesia._open, timeout=1)
        record = call.recorder.turns[-1]
        assert record.caller_text == "Tell me everything." and record.interrupted

        def leftovers() -> set[asyncio.Task[Any]]:
            return asyncio.all_tasks() - call.tasks_before - {asyncio.current_task()}

        await wait_until(lambda: {t for t in leftovers() if "FakeCaller" not in repr(t.get_coro())} == set(),
                         timeout=1)


async def test_dtmf_is_reported_to_the_observer():
    async with running_call(ScriptedLLM(), []) as call:
        call.session.on_dtmf("5")
        await wait_until(lambda: call.recorder.digits == ["5"])


async def test_a_call_through_the_real_anthropic_sdk():
    async with FakeAnthropic() as anthropic_fake:
        anthropic_fake.script(Turn([Text("We close ", "at ten", " tonight. ", "See you soon!")], delay_s=0.02))
        llm = AnthropicLLM(api_key=anthropic_fake.api_key, base_url=anthropic_fake.url)
        async with running_call(llm, ["When do you close?"], welcome=WELCOME) as call:
            await wait_until(lambda: call.recorder.turns)  # the greeting
            await call.caller.say(500)
            await wait_until(lambda: len(call.recorder.turns) == 2, timeout=8)
            assert call.recorder.turns[1].bot_text == "We close at ten tonight. See you soon!"
            body = anthropic_fake.requests[0].body
            assert body["messages"] == [{"role": "user", "content": "(The call has connected.)"},
                                        {"role": "assistant", "content": WELCOME},
                                        {"role": "user", "content": "When do you close?"}]
        await llm.aclose()


async def test_announcement_plays_its_audio_then_hangs_up():
    transport = FakeTransport()
    audio = speech_audio("We cannot take your call right now.", MS_PER_CHAR)
    announcement = Announcement(transport, audio, "We cannot take your call right now.")
    transport.handler = announcement
    await announcement.start()
    await asyncio.wait_for(announcement.wait(), 3)
    assert transport.hung_up and transport.played == ["turn0-seg0"]
    assert transport.audio().startswith(audio)
