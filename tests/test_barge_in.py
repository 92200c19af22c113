"""Barge-in on whole calls: the caller's voice stops the bot at once; an acknowledgement, a noise or words the
transcript takes back let it go on from the first word the caller did not hear (nothing lost, nothing said twice);
real words take the turn, and the history keeps what was heard, word for word. The bot's own echo and steady line
noise never stop it.

Same harness as tests/test_call_control.py: a real-time fake phone leg, the real Deepgram and Cartesia adapters
against their fakes on 127.0.0.1, and a scripted LLM. Here the Cartesia fake's voice gives every word audio of
its own byte value (and word timestamps, as Cartesia does), so what the caller heard can be read back word by word.
"""
from __future__ import annotations

import asyncio
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

import numpy as np
import pytest

from tests.fakes.cartesia_server import FakeCartesia
from tests.fakes.deepgram_server import FakeDeepgram
from tests.test_call_control import PhoneLeg, Step, ToolScriptedLLM, Webhooks
from tests.test_voice_pipeline import CONFIG, LONG_REPLY, FakeCaller, Recorder, wait_until
from voicebots.conversation import ConversationEngine
from voicebots.conversation.history import text_of
from voicebots.conversation.ports import Message
from voicebots.providers.cartesia_tts import CartesiaTTS
from voicebots.providers.deepgram_stt import DeepgramSTT
from voicebots.providers.silero_vad import SileroActivity
from voicebots.callruntime.records import recorded_audio
from voicebots.core import clock
from voicebots.voice import CallSession, SessionOptions, TurnRecord
from voicebots.voice.audio import FRAME_BYTES, MULAW_SILENCE, mulaw_to_pcm16, pcm16_to_mulaw
from voicebots.voice.control import CallControl

# The session's waits (silences, timeouts, playback) pass on a virtual clock: tests/virtual_time.py.
pytestmark = pytest.mark.virtual_time

MS_PER_CHAR = 20
REPLY = "".join(LONG_REPLY)
WORD_CODES = [code for code in range(0x10, 0x70) if code != 0x7F]


class NumberedVoice:
    """A voice whose n-th word (over the whole call) is audio of one byte value, sized to its characters."""

    def __init__(self) -> None:
        self.words: list[tuple[str, int, int]] = []  # (word, byte value, audio bytes with the space after it)
        self.spoken: list[int] = []  # audio bytes of each word itself (to its timestamp's end)

    def __call__(self, text: str, encoding: str = "pcm_mulaw",
                 sample_rate: int = 8000) -> tuple[bytes, list[tuple[str, float, float]]]:
        audio = bytearray()
        spans = []
        matches = list(re.finditer(r"\S+", text))
        for index, match in enumerate(matches):
            code = WORD_CODES[len(self.words) % len(WORD_CODES)]
            start = len(audio) if index else 0
            until = matches[index + 1].start() if index + 1 < len(matches) else len(text)
            chars = until - (match.start() if index else 0)
            size = chars * MS_PER_CHAR * 8
            audio += bytes([code]) * size
            spans.append((match.group(), start / 8000, (start + len(match.group()) * MS_PER_CHAR * 8) / 8000))
            self.words.append((match.group(), code, size))
            self.spoken.append(len(match.group()) * MS_PER_CHAR * 8)
        return bytes(audio), spans


def heard_by_caller(leg: PhoneLeg) -> bytes:
    """What the caller's loudspeaker played: the frames in real time, each clear cutting off what was queued."""
    events = sorted([(at, 0, frame) for at, frame in leg.frames] + [(at, 1, b"") for at in leg.clears])
    queue: list[tuple[float, bytes]] = []
    play_end = 0.0
    for at, kind, frame in events:
        if kind == 0:
            start = max(play_end, at)
            queue.append((start, frame))
            play_end = start + 0.02
        else:
            queue = [(start, frame if start + 0.02 <= at else frame[:max(0, int((at - start) * 8000))])
                     for start, frame in queue if start < at]
            play_end = min(play_end, at)
    return b"".join(frame for _, frame in queue)


def words_heard(voice: NumberedVoice, audio: bytes) -> tuple[list[int], dict[int, int]]:
    """The words the caller heard in order, by number (a word cut off and said again counts once), and the bytes
    heard of each."""
    by_code = {code: number for number, (_, code, _) in enumerate(voice.words)}
    order: list[int] = []
    amounts: dict[int, int] = {}
    for value in audio:
        if value == MULAW_SILENCE:
            continue
        number = by_code[value]
        if not order or order[-1] != number:
            order.append(number)
        amounts[number] = amounts.get(number, 0) + 1
    return order, amounts


def assert_every_word_heard_once(voice: NumberedVoice, audio: bytes) -> None:
    """Every word of the reply reached the caller in order, whole; only the word being said when the bot stopped
    may have been heard in part before being said again in full (and the silence after a word may be cut short)."""
    order, amounts = words_heard(voice, audio)
    assert order == list(range(len(voice.words))), (order, voice.words)
    sizes = [size for _, _, size in voice.words]
    wrong = {number: (amounts[number], voice.spoken[number], size) for number, size in enumerate(sizes)
             if not voice.spoken[number] <= amounts[number] < size + voice.spoken[number]}
    assert not wrong, f"words lost or said twice (bytes heard, bytes of the word, with its space): {wrong}"
    assert sum(amounts[number] > size for number, size in enumerate(sizes)) <= 1


@dataclass
class Call:
    session: CallSession
    transport: PhoneLeg
    caller: FakeCaller
    recorder: Recorder
    voice: NumberedVoice
    deepgram: FakeDeepgram


@asynccontextmanager
async def running_call(llm: Any, transcripts: list[Any], *, caller: Any = None, activity: Any = None,
                       voice: Any = None, stt_speech_rms: float = 500.0, recorder: Recorder | None = None,
                       **options: Any) -> AsyncIterator[Call]:
    numbered = NumberedVoice()
    async with (FakeDeepgram(transcripts, speech_rms=stt_speech_rms) as deepgram,
                FakeCartesia(ms_per_char=MS_PER_CHAR, voice=voice or numbered) as cartesia):
        transport, recorder = PhoneLeg(), recorder or Recorder()
        control = CallControl(Webhooks())
        session = CallSession(
            config=CONFIG, engine=ConversationEngine(llm, tool_runner=control), transport=transport,
            stt=DeepgramSTT(deepgram.api_key, websocket_url=deepgram.ws_url),
            tts=CartesiaTTS(cartesia.api_key, "voice-1", base_url=cartesia.http_url,
                            websocket_base_url=cartesia.ws_url),
            observer=recorder, options=SessionOptions(**options), control=control, activity=activity)
        transport.handler = session
        phone = caller(session, transport) if caller is not None else FakeCaller(session)
        await session.start()
        caller_task = asyncio.create_task(phone.run())
        try:
            yield Call(session, transport, phone, recorder, numbered, deepgram)
        finally:
            caller_task.cancel()
            await asyncio.gather(caller_task, return_exceptions=True)
            await session.stop()


async def ask_and_wait_for_the_reply(call: Call, *, into_s: float = 0.5) -> None:
    await call.caller.say(600)
    await wait_until(lambda: "turn0-seg0" in call.transport.played, timeout=8)
    await asyncio.sleep(into_s)  # well into the second segment


async def test_an_acknowledgement_stops_the_bot_at_once_and_it_goes_on_from_the_word_it_was_saying():
    llm = ToolScriptedLLM(Step(LONG_REPLY), Step(["Seven it is."]))
    async with running_call(llm, ["Do you have a table tonight?", "Uh-huh."]) as call:
        await ask_and_wait_for_the_reply(call)
        started = clock.now()
        await call.caller.say(300)  # "Uh-huh." while the bot speaks
        assert call.transport.clears and call.transport.clears[0] - started < 0.2  # stopped within 200 ms
        await wait_until(lambda: call.recorder.turns, timeout=15)
        record = call.recorder.turns[0]
        assert not record.interrupted and record.bot_text == REPLY.strip()
        assert len(call.transport.clears) == 1 and len(llm.requests) == 1  # the acknowledgement was not answered
        assert "false_interruption" in call.recorder.incident_kinds()
        assert_every_word_heard_once(call.voice, heard_by_caller(call.transport))
        assert text_of(call.session.history[-1]) == REPLY.strip()
        resumed_at = min(at for at, _ in call.transport.frames if at > call.transport.clears[0])
        assert resumed_at - call.caller.speech_ended_at < 0.7  # the bot went on soon after the caller


async def test_a_noise_without_words_stops_the_bot_only_for_a_moment():
    llm = ToolScriptedLLM(Step(LONG_REPLY))
    async with running_call(llm, ["Do you have a table tonight?", ""]) as call:  # the STT hears no words in it
        await ask_and_wait_for_the_reply(call)
        await call.caller.say(200)  # a cough
        await wait_until(lambda: call.recorder.turns, timeout=15)
        assert len(call.transport.clears) == 1 and not call.recorder.turns[0].interrupted
        assert call.recorder.turns[0].bot_text == REPLY.strip() and len(llm.requests) == 1
        assert_every_word_heard_once(call.voice, heard_by_caller(call.transport))


async def test_words_the_transcript_takes_back_let_the_bot_go_on():
    llm = ToolScriptedLLM(Step(LONG_REPLY))
    # The interim results take the noise for words; the final transcript revises them away.
    async with running_call(llm, ["Do you have a table tonight?", ("Wait a", "")]) as call:
        await ask_and_wait_for_the_reply(call)
        await call.caller.say(500)
        await wait_until(lambda: call.recorder.turns, timeout=15)
        assert len(call.transport.clears) == 1 and not call.recorder.turns[0].interrupted
        assert len(llm.requests) == 1
        assert_every_word_heard_once(call.voice, heard_by_caller(call.transport))


async def test_real_words_take_the_turn_and_the_history_keeps_the_words_heard():
    llm = ToolScriptedLLM(Step(LONG_REPLY), Step(["Seven it is."]))
    async with running_call(llm, ["Do you have a table tonight?", "Seven please."]) as call:
        await ask_and_wait_for_the_reply(call)
        started = clock.now()
        await call.caller.say(500)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=10)
        assert call.transport.clears[0] - started < 0.2
        cut, answer = call.recorder.turns
        heard = cut.bot_text
        assert cut.interrupted and REPLY.startswith(heard) and REPLY[len(heard)] == " "  # ends on a whole word
        numbers, amounts = words_heard(call.voice, heard_by_caller(call.transport))
        reply_words = len(REPLY.split())
        whole = [n for n in numbers if n < reply_words and amounts[n] >= call.voice.spoken[n]]
        assert [call.voice.words[number][0] for number in whole] == heard.split()  # the words heard whole, no more
        assert (answer.caller_text, answer.bot_text) == ("Seven please.", "Seven it is.")
        assert call.session.history[1] == Message.assistant(heard)
        assert call.session.history[2] == Message.user("Seven please.")


class SlowRecorder(Recorder):
    """Records an interrupted turn in 100 ms (a database write), while the caller goes on talking."""

    caller: FakeCaller | None = None

    async def on_turn(self, record: TurnRecord) -> None:
        if record.interrupted and self.caller is not None:
            self.caller.say_later(300)
            await asyncio.sleep(0.1)
        await super().on_turn(record)


async def test_a_reply_is_timed_from_the_end_of_the_words_it_answers_not_from_words_after_them():
    llm = ToolScriptedLLM(Step(LONG_REPLY), Step(["Seven it is."]), Step(["Yes."]))
    recorder = SlowRecorder()
    async with running_call(llm, ["Do you have a table tonight?", "Seven please.", "For two."],
                            recorder=recorder) as call:
        recorder.caller = call.caller
        await ask_and_wait_for_the_reply(call)
        await call.caller.say(500)
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=10)
        answer = call.recorder.turns[1]
        assert answer.caller_text == "Seven please."
        assert answer.timings["stt_ms"] >= 0, answer.timings


async def test_an_acknowledgement_then_a_question_the_bot_goes_on_then_answers():
    llm = ToolScriptedLLM(Step(LONG_REPLY), Step(["Seven it is."]))
    async with running_call(llm, ["Do you have a table tonight?", ("Okay so", "Okay."), "Seven for me?"]) as call:
        await ask_and_wait_for_the_reply(call)
        await call.caller.say(400)
        await wait_until(lambda: "false_interruption" in call.recorder.incident_kinds(), timeout=10)
        await asyncio.sleep(0.5)
        await call.caller.say(600)  # a real question cuts the resumed reply off and is answered
        await wait_until(lambda: len(call.recorder.turns) == 2, timeout=10)
        assert len(call.transport.clears) == 2 and call.recorder.turns[0].interrupted
        assert call.recorder.turns[1].bot_text == "Seven it is." and len(llm.requests) == 2


async def test_a_caller_speaking_while_the_bot_thinks_holds_its_reply_until_they_finish():
    llm = ToolScriptedLLM(Step(["Sure, ", "we have a table at seven."], delay_s=0.4))
    async with running_call(llm, ["Do you have a table tonight?", "Mm-hmm."]) as call:
        await call.caller.say(600)
        await wait_until(lambda: llm.requests, timeout=8)
        await call.caller.say(700)  # keeps going while the reply is written: it must not be talked over
        spoke_until = call.caller.speech_ended_at
        await wait_until(lambda: call.recorder.turns, timeout=10)
        assert all(at >= spoke_until for at, _ in call.transport.frames)
        reply = call.recorder.turns[0]
        assert reply.bot_text == "Sure, we have a table at seven."
        # The held reply's first audio went out when the hold ended; its latency counts to then.
        first_frame_at = call.transport.frames[0][0]
        assert reply.timings["latency_ms"] == round((first_frame_at - reply.origin) * 1000, 1), reply.timings


# --- Echo and line noise -----------------------------------------------------------------------------

SPEECH = recorded_audio("trouble")  # real speech (espeak-ng), 8 kHz mu-law


def spoken_voice(text: str, encoding: str = "pcm_mulaw",
                 sample_rate: int = 8000) -> tuple[bytes, list[tuple[str, float, float]]]:
    """A voice that says real speech (a recording, cycled to the text's length), so its echo is a voice."""
    size = len(text) * 60 * 8
    audio = (SPEECH * (size // len(SPEECH) + 1))[:size]
    return audio, []


class EchoingCaller(FakeCaller):
    """A caller whose phone leaks the bot's voice back `echo_db` down and `delay_s` late, over steady line noise;
    what they say is a real recording."""

    def __init__(self, session: CallSession, *, leg: PhoneLeg, echo_db: float = -20.0, delay_s: float = 0.12,
                 noise_rms: float = 0.0) -> None:
        super().__init__(session)
        self._leg = leg
        self._gain = 10 ** (echo_db / 20)
        self._delay_s = delay_s
        self._noise_rms = noise_rms
        self._rng = np.random.default_rng(3)
        self._voice = np.zeros(0)

    def talk(self, audio: bytes) -> None:
        self._voice = np.concatenate((self._voice, mulaw_to_pcm16(audio).astype(np.float64)))

    async def run(self) -> None:
        next_at = clock.now()
        while True:
            frame = self._rng.standard_normal(FRAME_BYTES) * self._noise_rms
            frame += mulaw_to_pcm16(self._bot_audio_at(clock.now() - self._delay_s)) * self._gain
            if len(self._voice):
                said, self._voice = self._voice[:FRAME_BYTES], self._voice[FRAME_BYTES:]
                frame[:len(said)] += said
            self._session.feed_audio(pcm16_to_mulaw(frame))
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - clock.now()))

    def _bot_audio_at(self, at: float) -> bytes:
        """The frame the caller's loudspeaker played at `at` (silence if none)."""
        play_end, clears = 0.0, self._leg.clears
        for sent, frame in self._leg.frames:
            start = max(play_end, sent)
            if any(sent <= clear <= at and clear < start + 0.02 for clear in clears):
                play_end = 0.0
                continue
            if start <= at < start + 0.02:
                return frame
            play_end = start + 0.02
            if start > at:
                break
        return bytes([MULAW_SILENCE]) * FRAME_BYTES


async def test_a_transcript_of_the_bots_own_echo_does_not_stop_it():
    reply = ["Of course. ", "We are open Monday to Friday from eight in the morning until six in the evening, ",
             "and on Saturdays from nine until one. ", "We are closed on Sundays and on public holidays. ",
             "Would you like to book a visit?"]
    llm = ToolScriptedLLM(Step(reply))

    def caller(session: CallSession, leg: PhoneLeg) -> EchoingCaller:
        return EchoingCaller(session, leg=leg)

    # This STT hears the echo (a speech-to-text more sensitive than Deepgram) and writes the bot's words down.
    async with running_call(llm, ["When are you open?", "we are open monday to friday from eight"],
                            voice=spoken_voice, activity=SileroActivity(), caller=caller, stt_speech_rms=100) as call:
        call.caller.talk(SPEECH[:6000])  # the question
        await wait_until(lambda: "echo_ignored" in call.recorder.incident_kinds(), timeout=20)
        assert call.transport.clears == []  # the bot never stopped
        await wait_until(lambda: call.recorder.turns, timeout=30)
        assert len(call.recorder.turns) == 1 and not call.recorder.turns[0].interrupted
        assert len(llm.requests) == 1  # the echo was not answered as if the caller had said it


async def test_the_bots_own_echo_and_steady_line_noise_never_stop_it_but_the_caller_does():
    reply = ["Of course. ", "We are open Monday to Friday from eight in the morning until six in the evening, ",
             "and on Saturdays from nine until one. ", "We are closed on Sundays and on public holidays. ",
             "Would you like to book a visit?"]
    llm = ToolScriptedLLM(Step(reply))

    def caller(session: CallSession, leg: PhoneLeg) -> EchoingCaller:
        return EchoingCaller(session, leg=leg, noise_rms=150)

    # The STT fake hears only the caller's own voice (its echo of the bot is too faint for it), as Deepgram would.
    async with running_call(llm, ["When are you open?"], voice=spoken_voice, activity=SileroActivity(),
                            caller=caller, stt_speech_rms=1200) as call:
        echoing = call.caller
        echoing.talk(SPEECH[:6000])  # the question
        await wait_until(lambda: len(call.transport.played) >= 2, timeout=20)  # the reply plays, echoed, for seconds
        assert call.transport.frames and call.transport.clears == []
        started = clock.now()
        echoing.talk(recorded_audio("not_configured")[:12000])  # the caller talks over the bot
        await wait_until(lambda: call.transport.clears, timeout=2)
        voice_starts = started + np.flatnonzero(np.abs(mulaw_to_pcm16(recorded_audio("not_configured"))) > 300)[0] / 8000
        assert call.transport.clears[0] - voice_starts < 0.3
