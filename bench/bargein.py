"""Benchmark of barge-in on live calls: how fast the bot stops when the caller talks over it, whether it goes on
from the right word after an acknowledgement ("okay", "uh-huh") or a noise, and whether its own echo or a noisy
line ever stops it.

    .venv/bin/python -m bench.bargein [--quick] [--interim-delays 100,300,500] [--trials 50] [--no-timestamps]
                                      [--min-speech-ms 60]

Set-up as in bench.calls: Daphne serving the real ASGI app (a separate process) on the benchmark database, the
vendor fakes of tests/fakes on 127.0.0.1 in another process (the real Deepgram, Anthropic and Cartesia SDK code
of the product runs against them), and callers speaking Plivo's audio-stream protocol (`PlivoCallSimulator`).
Everything the callers say is real speech synthesized with espeak-ng (five voices and speeds), so the server's
Silero voice detector hears voices; the noises (coughs, clicks) are synthesized here. The bot's voice is real
speech too (espeak-ng, word by word with 80 ms between words), and the TTS fake reports where each word lies, as
Cartesia's timestamps do (`--no-timestamps`: it does not, and the platform estimates word boundaries itself).

Interruptions and acknowledgements, once per STT interim delay. A call: after the greeting the caller asks a
question and the bot answers with a long reply (~60 s of audio). Once the reply has played for 1 s, the caller
says two or so acknowledgements or noises, a few seconds apart, then interrupts with a sentence ("Wait, stop, I
have a question."); the bot answers that with the long reply again, and the next round begins. Before each clip
the STT fake is told what it will hear in it: the clip's words, punctuated as Deepgram writes them ("Uh-huh.",
"Got it."), and nothing for a noise. Its first interim result comes `--interim-delays` ms into the speech (Deepgram's
live interim results come about half a second in), later ones every 100 ms of speech; the final 300 ms after the
speech ends (the product's endpointing) plus 50 ms, or at once when the platform asks (Finalize).

Figures, per interim delay:
- reaction: from the start of the caller's interrupting speech (the beginning of the first 20 ms frame that
  carries it, on the caller's clock) to the caller receiving `clearAudio`, p50/p95 over the interruptions (20, 6
  with --quick); target p95 <= 200 ms. Also: how many stopped the bot before the STT's first interim result
  (with a voice-first barge-in, all of them), and the interruptions that then stood (the bot answered them).
- acknowledgements (35, 14 with --quick): each either never stopped the bot, or stopped it and was followed by
  the same reply again from the first word the caller had not heard (found by matching the audio: not a word
  lost, nor a whole word said twice). Target >= 95%. The audible gap, from the caller's `clearAudio` to the first
  audio of the resumed reply, p50/p95; target p95 <= 700 ms. Noises (coughs, clicks) are reported beside them.

Echo and noise (`--trials`, 50 each; 10 with --quick): callers who say nothing while a bot reads out a long
greeting; their line carries the bot's own voice 20 dB down and 120 ms late (a phone's echo), or steady line noise
(white noise at about -40 dBFS with a 50 Hz hum). A trial is 3 s of the bot talking; any `clearAudio` is a false
stop. Target: 0 in each.

Vendor delays (the fakes keep the real services' timing): the model's first token 350 ms, the first TTS audio
90 ms, as in bench.calls.
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import random
import re
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np

from bench.calls import LLM_FIRST_TOKEN_S, TTS_FIRST_AUDIO_S, Server, Vendors, answered, percentile, start_fakes
from bench.calls import make_bot as make_calls_bot
from bench.knowledge import use_bench_database
from bench.speech import spoken, trimmed
from voicebots.telephony.simulator import FRAME_S, PlivoCallSimulator
from voicebots.voice.audio import FRAME_BYTES, MULAW_SILENCE, SAMPLE_RATE, mulaw_to_pcm16, pcm16_to_mulaw, rms

TARGETS = {"reaction_p95_ms": 200, "acknowledged_ok_rate": 0.95, "resume_gap_p95_ms": 700, "echo_stops": 0,
           "noise_stops": 0}
INTERIM_DELAYS_MS = (100, 300, 500)
STT_SPEECH_RMS = 500.0  # the STT fake's threshold for a voiced frame
STT_PROCESSING_S = 0.05  # Deepgram's own time for a final, after its endpointing
LEAD_S = 1.0  # the caller lets the bot's reply play this long before talking over it
OBSERVE_S = 1.5  # after a clip, how long a clearAudio still counts as caused by it
RESUME_WAIT_S = 3.0  # after a stop, how long the caller waits for the bot to go on
BOT_QUIET_S = 4.0  # a bot quiet this long has finished its reply: the caller asks again
ROUNDS_PER_CALL = 5
ACCOUNT_NAME = "bench-bargein"  # not "bench-calls ...": bench.calls deletes those when it starts

BOT_VOICE = ("en-us", 175)
WORD_GAP_MS = 80  # silence between the bot's words (its TTS fake says them one by one)
GAP_FOUND_MS = 60  # this much digital silence in the bot's audio is a gap between words (espeak's stops: < 40 ms)
SAME_WORD_TOLERANCE = 8  # bytes (1 ms): how far off a resume may start and still be on the word's boundary
ECHO_DB = -20.0
ECHO_DELAY_S = 0.12
LINE_NOISE_RMS = 330.0  # about -40 dBFS
TRIAL_S = 3.0

QUESTION = "Can you tell me your opening hours and prices?"
LONG_REPLY = (
    "Of course. We are open Monday to Friday from eight in the morning until six in the evening, ",
    "and on Saturdays from nine until one. We are closed on Sundays and public holidays. ",
    "A check-up with a cleaning costs ninety-five dollars, and a check-up alone is sixty. ",
    "X-rays are thirty dollars more, and most insurance plans cover them once a year. ",
    "Whitening starts at two hundred and fifty dollars, and a filling at one hundred and twenty. ",
    "If you are a new patient, please arrive ten minutes early to fill in a short form. ",
    "We have free parking behind the building, and the entrance is on the side street. ",
    "Would you like me to book an appointment for you?",
)
LONG_GREETING = ("Hello, and thank you for calling Smile Dental, your family dentist in the heart of town. "
                 "Before we begin, here is some news about our practice. We are open Monday to Friday from eight "
                 "in the morning until six in the evening, and on Saturdays from nine until one. From next month "
                 "we also offer evening appointments on Thursdays, until eight o'clock. New patients are welcome, "
                 "and most insurance plans are accepted. Parking is free behind the building. How can I help?")
# What the STT fake writes for each acknowledgement, and what espeak-ng is given to say it.
BACKCHANNELS = {
    "Okay.": "okay", "Yeah.": "yeah", "Uh-huh.": "uh-huh", "Right.": "right",
    "Mm-hmm.": "[[m'h@m]]",  # phonemes: as text espeak-ng spells it out ("em em")
    "Sure.": "sure", "Got it.": "got it",
}
INTERRUPTIONS = (
    "Wait, stop, I have a question.", "Sorry, can I ask something?", "Hold on, that's not what I meant.",
    "No, I need an appointment on Tuesday.", "Excuse me, how much is a crown?",
)
VOICES = (("en-us", 160), ("en-gb", 140), ("en-us+f3", 180), ("en-gb-scotland+m3", 150), ("en-029+f2", 170))


# --- The caller's clips --------------------------------------------------------------------------------


@dataclass
class Clip:
    kind: str  # "question", "backchannel", "noise" or "interruption"
    label: str
    transcript: str  # what the STT fake hears in it
    audio: bytes  # 8 kHz mu-law, starting where the sound starts

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def stt_first_words_ms(self, interim_delay_ms: int) -> float | None:
        """When the STT fake's first interim result with words comes, from the clip's start (its rule: that long
        after the first voiced frame)."""
        if not self.transcript.split():
            return None
        for index in range(len(self.audio) // FRAME_BYTES):
            if rms(self.audio[index * FRAME_BYTES:(index + 1) * FRAME_BYTES]) >= STT_SPEECH_RMS:
                return index * FRAME_S * 1000 + interim_delay_ms
        return None


def cough(seed: int) -> bytes:
    """A cough-like burst: low-passed noise, a sharp attack and a ~60 ms decay, 300 ms long."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
    noise = np.convolve(rng.standard_normal(len(t)), np.ones(4) / 4, mode="same")
    envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / 0.06)
    return trimmed(pcm16_to_mulaw(16000 * noise * envelope))


def click(n: int) -> bytes:
    """A click: 10 ms of a decaying ring (1.5 kHz and up), as when the handset is knocked."""
    t = np.arange(int(0.01 * SAMPLE_RATE)) / SAMPLE_RATE
    ring = np.sin(2 * np.pi * (1500 + 500 * n) * t) * np.exp(-t / 0.003)
    return trimmed(pcm16_to_mulaw(24000 * ring))


def make_clip(kind: str, transcript: str, text: str, voice: str, speed: int) -> Clip:
    return Clip(kind, f"{transcript} ({voice}, {speed} wpm)", transcript, spoken(text, voice, speed))


def backchannel_clips(voices: int) -> list[Clip]:
    return [make_clip("backchannel", transcript, text, voice, speed)
            for voice, speed in VOICES[:voices] for transcript, text in BACKCHANNELS.items()]


def noise_clips(each: int) -> list[Clip]:
    return ([Clip("noise", f"cough {n + 1}", "", cough(n)) for n in range(each)]
            + [Clip("noise", f"click {n + 1}", "", click(n)) for n in range(each)])


def interruption_clips(count: int) -> list[Clip]:
    clips = []
    for n in range(count):
        voice, speed = VOICES[(n + n // len(INTERRUPTIONS)) % len(VOICES)]
        sentence = INTERRUPTIONS[n % len(INTERRUPTIONS)]
        clips.append(make_clip("interruption", sentence, sentence, voice, speed))
    return clips


def question_clip() -> Clip:
    return make_clip("question", QUESTION, QUESTION, *VOICES[0])


def calls_to_make(listening: list[Clip], interruptions: list[Clip]) -> list[list[Clip]]:
    """The clips of each call: rounds of acknowledgements and noises, each round ended by an interruption."""
    listening = random.Random(7).sample(listening, len(listening))  # words, voices and noises mixed
    rounds = len(interruptions)
    plan = [listening[n::rounds] + [interruptions[n]] for n in range(rounds)]
    calls = -(-rounds // ROUNDS_PER_CALL)
    return [sum(plan[n::calls], []) for n in range(calls)]


# --- The vendors -----------------------------------------------------------------------------------


@functools.cache
def _word_audio(word: str) -> bytes:
    return spoken(word, *BOT_VOICE)


class WordByWordVoice:
    """The TTS fake's voice: espeak-ng says each word, `WORD_GAP_MS` of silence between words, and (with
    `timestamps`) the fake reports where each word lies, as Cartesia does."""

    def __init__(self, timestamps: bool) -> None:
        self.timestamps = timestamps

    def __call__(self, text: str, encoding: str, sample_rate: int) -> tuple[bytes, list[tuple[str, float, float]]]:
        if (encoding, sample_rate) != ("pcm_mulaw", SAMPLE_RATE):
            raise ValueError("The benchmark's voice speaks 8 kHz mu-law, as Plivo streams do")
        audio, words = bytearray(), []
        gap = bytes([MULAW_SILENCE]) * (WORD_GAP_MS * SAMPLE_RATE // 1000)
        for word in text.split():
            said = _word_audio(re.sub(r"[^\w'-]", "", word) or word)
            words.append((word, len(audio) / SAMPLE_RATE, (len(audio) + len(said)) / SAMPLE_RATE))
            audio += said + gap
        return bytes(audio), words if self.timestamps else []


class ScriptedVendors(Vendors):
    """bench.calls' fakes with a long reply, the product's own endpointing, the word-by-word voice, and lines on
    stdin that tell the STT fake what the caller's next utterance says, or when its first interim comes."""

    def __init__(self, interim_ms: int, timestamps: bool) -> None:
        command = ("bench.bargein", "--serve-vendors", "--interim-delays", str(interim_ms))
        super().__init__(command + (() if timestamps else ("--no-timestamps",)), stdin=subprocess.PIPE)

    def environment(self) -> dict[str, str]:
        environment = super().environment()
        del environment["STT_ENDPOINTING_MS"]  # bench.calls shortens it; barge-in is measured at the default
        return environment

    def _tell(self, message) -> None:
        """Blocks until the fake has it (a few ms): a clip must not reach it first."""
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        if self.process.stdout.readline().strip() != "ok":
            raise RuntimeError("The vendor fakes stopped")

    def transcribe_next_as(self, transcript: str) -> None:
        self._tell(transcript)

    def first_interim_after(self, interim_ms: int) -> None:
        self._tell({"first_interim_ms": interim_ms})


def serve_vendors(interim_ms: int, timestamps: bool) -> None:
    """Run the fakes until terminated; print their URLs as one JSON line first, then take transcripts."""
    from tests.fakes.anthropic_server import FakeAnthropic, Text, Turn
    from tests.fakes.cartesia_server import FakeCartesia
    from tests.fakes.deepgram_server import FakeDeepgram

    async def run() -> None:
        llm = FakeAnthropic()
        llm.default_turn = Turn([Text(*LONG_REPLY)], first_token_delay_s=LLM_FIRST_TOKEN_S)
        stt = FakeDeepgram(final_delay_s=STT_PROCESSING_S, speech_rms=STT_SPEECH_RMS, interim_every_ms=100,
                           first_interim_ms=interim_ms)
        tts = FakeCartesia(first_chunk_delay_s=TTS_FIRST_AUDIO_S, voice=WordByWordVoice(timestamps))
        await start_fakes(llm, stt, tts)
        while line := await asyncio.to_thread(sys.stdin.readline):
            message = json.loads(line)
            if isinstance(message, dict):
                stt.first_interim_ms = message["first_interim_ms"]
            else:
                while stt.next_transcript():  # what the last clip left unheard (it had fewer bursts of sound)
                    pass
                if message:
                    stt.script(message)  # its first burst of sound; any further ones are heard as nothing
            print("ok", flush=True)

    asyncio.run(run())


# --- What the caller heard -------------------------------------------------------------------------


def word_spans(audio: bytes) -> list[tuple[int, int]]:
    """The bot's words in its received audio: stretches of sound between gaps of `GAP_FOUND_MS` of silence."""
    silent = np.frombuffer(audio, dtype=np.uint8) == MULAW_SILENCE
    spans, start, quiet = [], None, 0
    needed = GAP_FOUND_MS * SAMPLE_RATE // 1000
    for index, is_silent in enumerate(silent):
        if not is_silent:
            if start is None:
                start = index
            quiet, end = 0, index + 1
        elif start is not None:
            quiet += 1
            if quiet >= needed:
                spans.append((start, end))
                start = None
    if start is not None:
        spans.append((start, end))
    return spans


@dataclass
class Stop:
    """A clearAudio the caller received, and what came next."""

    at: float  # caller's clock
    reply: bytes  # the bot's reply as received until then
    played: int  # bytes of it the caller had heard
    next_audio_at: float | None = None
    next_audio: bytes = b""
    next_index: int = 0  # where the audio after the stop begins in the caller's record of the reply

    def resumed_at(self) -> int | None:
        """Where in the reply the audio after the stop starts, if it goes on with the same reply near where it
        stopped (a new reply starts from its beginning, far behind)."""
        sound = np.flatnonzero(np.frombuffer(self.next_audio, dtype=np.uint8) != MULAW_SILENCE)
        if not len(sound) or len(self.next_audio) - sound[0] < 64:
            return None
        lead = int(sound[0])
        start = self.next_audio[lead:lead + 64]
        found, position = [], self.reply.find(start)
        while position >= 0:  # a word said twice in the reply has the same audio: the copy nearest the stop
            found.append(position - lead)
            position = self.reply.find(start, position + 1)
        nearest = min(found, key=lambda at: abs(at - self.played), default=None)
        if nearest is None or abs(nearest - self.played) > 2 * SAMPLE_RATE:
            return None
        return nearest

    def resume_window(self) -> tuple[int, int]:
        """Where the reply should go on: from the end of the last word the caller heard whole to the start of the
        first word they did not (a word heard in part is said again)."""
        spans = word_spans(self.reply)
        heard_end = max([end for start, end in spans if end <= self.played], default=0)
        following = [start for start, end in spans if end > self.played]
        return heard_end, following[0] if following else len(self.reply)

    def word_kept(self) -> bool | None:
        """Did the reply go on from the first word the caller had not heard, with no whole word said twice?
        (None: it did not go on.)"""
        resumed = self.resumed_at()
        if resumed is None:
            return None
        heard_end, first_unheard = self.resume_window()
        return heard_end - SAME_WORD_TOLERANCE <= resumed <= first_unheard + SAME_WORD_TOLERANCE

    def describe(self) -> str:
        heard_end, first_unheard = self.resume_window()
        return (f"heard to byte {self.played}, went on from {self.resumed_at()} "
                f"(expected {heard_end}-{first_unheard})")


@dataclass
class Outcome:
    clip: Clip
    speech_start_s: float  # on the caller's clock
    stop: Stop | None  # the first clearAudio after it started, if one came in time

    @property
    def stopped(self) -> bool:
        return self.stop is not None

    @property
    def reaction_ms(self) -> float | None:
        return None if self.stop is None else (self.stop.at - self.speech_start_s) * 1000

    @property
    def resumed(self) -> bool:
        return self.stop is not None and self.stop.resumed_at() is not None

    @property
    def gap_ms(self) -> float | None:
        if not self.resumed or self.stop.next_audio_at is None:
            return None
        return (self.stop.next_audio_at - self.stop.at) * 1000


# --- The callers -----------------------------------------------------------------------------------


class CallEnded(Exception):
    """The server closed the stream before the caller was done."""


class _Utterance:
    """Audio the caller is saying, and when its first and last frames went out."""

    def __init__(self, audio: bytes) -> None:
        self.audio = audio
        self.position = 0
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[float] = loop.create_future()
        self.ended: asyncio.Future[float] = loop.create_future()


class LineCaller(PlivoCallSimulator):
    """A caller who keeps the line: a media frame every 20 ms (what they say, or what their line carries), played
    checkpoints acknowledged, and every playAudio and clearAudio noted with its time."""

    def __init__(self, socket_url: str, *, call_id: str) -> None:
        super().__init__(socket_url, call_id=call_id)
        self.stops: list[Stop] = []
        self._outgoing: deque[_Utterance] = deque()
        self._reply = bytearray()  # the bot's audio received since the current reply began
        self._bot_audible_since: float | None = None

    async def _speak(self, socket, codec, playback, result, clock, state, speech_end_offsets, reader) -> None:
        self._note_audio(playback, clock)
        line = asyncio.create_task(self._keep_the_line(socket, codec, playback, result, clock, reader))
        try:
            await self._converse(playback, result, clock, line)
        except CallEnded:
            pass
        finally:
            line.cancel()
            await asyncio.gather(line, return_exceptions=True)

    def _note_audio(self, playback, clock) -> None:
        add, clear = playback.add, playback.clear

        def added(audio: bytes) -> None:
            stop = self.stops[-1] if self.stops else None
            if stop is not None and stop.next_audio_at is None:
                stop.next_audio_at, stop.next_audio, stop.next_index = clock(), audio, len(self._reply)
            self._reply += audio
            add(audio)

        def cleared() -> None:
            now = clock()
            unplayed = max(0, int((playback.ends_at - now) * SAMPLE_RATE))
            self.stops.append(Stop(now, bytes(self._reply), len(self._reply) - unplayed))
            clear()

        playback.add, playback.clear = added, cleared

    def new_reply(self) -> None:
        self._reply = bytearray()

    async def _keep_the_line(self, socket, codec, playback, result, clock, reader) -> None:
        frame_index = 0
        while not reader.done():
            delay = frame_index * FRAME_S - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -FRAME_S:
                result.late_media_frames += 1
            now = clock()
            self._watch_the_bot(playback, now)
            await socket.send(codec.media(self._next_frame(playback, now), chunk=frame_index,
                                          timestamp_ms=int(now * 1000)))
            for name in playback.due_checkpoints():
                result.checkpoints_acked.append(name)
                await socket.send(codec.played(name))
            frame_index += 1

    def _watch_the_bot(self, playback, now: float) -> None:
        if playback.ends_at <= now:
            self._bot_audible_since = None
        elif self._bot_audible_since is None:
            self._bot_audible_since = now

    def _next_frame(self, playback, now: float) -> bytes:
        if not self._outgoing:
            return bytes([MULAW_SILENCE]) * FRAME_BYTES
        utterance = self._outgoing[0]
        if utterance.position == 0:
            utterance.started.set_result(now - FRAME_S)  # the frame was being spoken for the last 20 ms
        frame = utterance.audio[utterance.position:utterance.position + FRAME_BYTES]
        utterance.position += FRAME_BYTES
        if utterance.position >= len(utterance.audio):
            self._outgoing.popleft()
            utterance.ended.set_result(now)
        return frame.ljust(FRAME_BYTES, bytes([MULAW_SILENCE]))

    async def _converse(self, playback, result, clock, line) -> None:
        raise NotImplementedError

    @staticmethod
    async def _until(condition: Callable[[], bool], line: asyncio.Task, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                if line.done():
                    raise CallEnded
                await asyncio.sleep(FRAME_S / 4)
        if line.done():
            raise CallEnded


class BargingCaller(LineCaller):
    """A caller who talks over the bot: after the greeting it asks `question`, then says each clip once the
    bot's reply has played `LEAD_S` (asking again when the bot has gone quiet). `transcribe_as` tells the STT fake
    what the next utterance says."""

    def __init__(self, socket_url: str, *, call_id: str, question: Clip, clips: list[Clip],
                 transcribe_as: Callable[[str], Awaitable[None]]) -> None:
        super().__init__(socket_url, call_id=call_id)
        self.question = question
        self.clips = clips
        self.transcribe_as = transcribe_as
        self.outcomes: list[Outcome] = []

    async def _converse(self, playback, result, clock, line) -> None:
        await self._until(lambda: self._ready_to_speak(playback, result, clock()), line, timeout_s=15)
        await self._say(self.question)
        self.new_reply()
        for clip in self.clips:
            await self._wait_for_the_bot(playback, clock, line, clip.seconds + OBSERVE_S + 0.5)
            self.outcomes.append(await self._talk_over(clip, clock, line))

    async def _say(self, clip: Clip) -> _Utterance:
        await self.transcribe_as(clip.transcript)
        utterance = _Utterance(clip.audio)
        self._outgoing.append(utterance)
        await utterance.ended
        return utterance

    async def _wait_for_the_bot(self, playback, clock, line, needed_s: float) -> None:
        """Until the bot's reply has played `LEAD_S` with `needed_s` still to go; a quiet bot is asked again."""
        quiet_since, asked = clock(), 0
        while True:
            now = clock()
            if self._bot_audible_since is not None:
                quiet_since = now
                if now - self._bot_audible_since >= LEAD_S and playback.ends_at - now >= needed_s:
                    return
            elif now - quiet_since >= BOT_QUIET_S:
                if asked == 3:
                    raise RuntimeError(f"The bot did not answer {self.call_id} after three questions")
                await self._say(self.question)
                self.new_reply()
                quiet_since, asked = clock(), asked + 1
            if line.done():
                raise CallEnded
            await asyncio.sleep(FRAME_S)

    async def _talk_over(self, clip: Clip, clock, line) -> Outcome:
        stops_before = len(self.stops)
        utterance = await self._say(clip)
        start = utterance.started.result()
        deadline = clock() + OBSERVE_S
        await self._until(lambda: len(self.stops) > stops_before or clock() >= deadline, line, timeout_s=5)
        stops = [stop for stop in self.stops[stops_before:] if stop.at >= start]
        stop = stops[0] if stops else None
        if stop is not None:  # what comes next: the same reply going on, or an answer
            wait_until = clock() + RESUME_WAIT_S
            await self._until(lambda: stop.next_audio_at is not None or clock() >= wait_until, line, timeout_s=10)
            if clip.kind == "interruption" or stop.resumed_at() is None:  # a new reply began with that audio
                self._reply = self._reply[stop.next_index:] if stop.next_audio_at is not None else bytearray()
        return Outcome(clip, start, stop)


class ListeningCaller(LineCaller):
    """A caller who says nothing while the bot talks: their line carries the bot's own voice `echo_db` down and
    `delay_s` late, and/or steady noise of `noise_rms` with a 50 Hz hum."""

    def __init__(self, socket_url: str, *, call_id: str, echo_db: float | None, noise_rms: float,
                 talk_s: float, seed: int) -> None:
        super().__init__(socket_url, call_id=call_id)
        self.gain = None if echo_db is None else 10 ** (echo_db / 20)
        self.noise_rms = noise_rms
        self.talk_s = talk_s  # how long to listen to the bot talking
        self.rng = np.random.default_rng(seed)
        self.playback = None
        self.bot_talked_s = 0.0

    def _next_frame(self, playback, now: float) -> bytes:
        self.playback = playback
        frame = self.rng.standard_normal(FRAME_BYTES) * self.noise_rms
        if self.noise_rms:
            frame += self.noise_rms * np.sin(2 * np.pi * 50 * (now + np.arange(FRAME_BYTES) / SAMPLE_RATE))
        if self.gain is not None:
            start = int((now - ECHO_DELAY_S) * SAMPLE_RATE)
            heard = bytes(playback.recording[max(start, 0):max(start, 0) + FRAME_BYTES]) if start >= 0 else b""
            if heard:
                frame[:len(heard)] += mulaw_to_pcm16(heard) * self.gain
        return pcm16_to_mulaw(frame)

    async def _converse(self, playback, result, clock, line) -> None:
        give_up_at = self.talk_s + 15.0  # the greeting is longer than any trial needs
        last = clock()
        while self.bot_talked_s < self.talk_s and last < give_up_at:
            now = clock()
            if playback.ends_at > now:  # the bot was audible since the last look
                self.bot_talked_s += now - last
            last = now
            if line.done():
                raise CallEnded
            await asyncio.sleep(FRAME_S)


# --- The benchmark ----------------------------------------------------------------------------------


def make_bot(name: str = "barge-in", welcome: str | None = None, min_speech_ms: int | None = None):
    """A bot with the product's default barge-in settings (interruptions on, one word, default backchannels,
    unless `min_speech_ms` says how much speech stops it), in an account of its own that bench.calls does not
    clean up under a running benchmark."""
    bot = make_calls_bot(name, account_name=ACCOUNT_NAME)
    if welcome is not None:
        bot.welcome_message = welcome
    if min_speech_ms is not None:
        bot.interruption_min_speech_ms = min_speech_ms
    bot.save()
    return bot


def run_calls(server: Server, vendors: ScriptedVendors, bot, question: Clip, calls: list[list[Clip]]) -> list[Outcome]:
    async def transcribe_as(text: str) -> None:
        await asyncio.to_thread(vendors.transcribe_next_as, text)

    outcomes = []
    for number, clips in enumerate(calls, 1):
        call_uuid, url = answered(server, bot)
        caller = BargingCaller(url, call_id=call_uuid, question=question, clips=clips, transcribe_as=transcribe_as)
        result = asyncio.run(caller.run())
        if result.closed_by_server or len(caller.outcomes) < len(clips):
            raise RuntimeError(f"Call {call_uuid} ended after {len(caller.outcomes)} of {len(clips)} clips")
        outcomes.extend(caller.outcomes)
        print(f"    call {number}/{len(calls)}: {len(clips)} clips, {result.clears} clearAudio, "
              f"{result.late_media_frames} late caller frames", flush=True)
    return outcomes


def run_listeners(server: Server, bot, trials: int, *, echo_db: float | None, noise_rms: float) -> dict:
    """`trials` of 3 s of the bot talking, over callers' lines carrying its echo or line noise; the stops."""
    callers_count = max(1, min(5, -(-trials // 8)))
    talk_s = TRIAL_S * -(-trials // callers_count)

    async def all_calls() -> list[ListeningCaller]:
        callers = []
        for seed in range(callers_count):
            call_uuid, url = await asyncio.to_thread(answered, server, bot)
            callers.append(ListeningCaller(url, call_id=call_uuid, echo_db=echo_db, noise_rms=noise_rms,
                                           talk_s=talk_s, seed=seed))
        await asyncio.gather(*(caller.run() for caller in callers))
        return callers

    callers = asyncio.run(all_calls())
    talked_s = sum(caller.bot_talked_s for caller in callers)
    return {"trials": int(talked_s // TRIAL_S), "stops": sum(len(caller.stops) for caller in callers),
            "bot_talked_s": round(talked_s, 1)}


def summarize(outcomes: list[Outcome], interim_ms: int) -> dict:
    interruptions = [o for o in outcomes if o.clip.kind == "interruption"]
    stopped = [o for o in interruptions if o.stopped]
    reactions = [o.reaction_ms for o in stopped]
    before_words = sum(o.reaction_ms < o.clip.stt_first_words_ms(interim_ms) for o in stopped)
    acknowledgements = [o for o in outcomes if o.clip.kind == "backchannel"]
    noises = [o for o in outcomes if o.clip.kind == "noise"]

    def listened(group: list[Outcome]) -> dict:
        stops = [o for o in group if o.stopped]
        kept = [o for o in stops if o.stop.word_kept()]
        gaps = [o.gap_ms for o in kept if o.gap_ms is not None]
        return {"count": len(group), "stopped": len(stops), "resumed": sum(o.resumed for o in stops),
                "resumed_word_kept": len(kept), "ok": len(group) - len(stops) + len(kept),
                "gap_p50_ms": rounded(percentile(gaps, 0.5)), "gap_p95_ms": rounded(percentile(gaps, 0.95)),
                "gap_max_ms": rounded(max(gaps, default=None)),
                "not_ok": [f"{o.clip.label}: stopped after {o.reaction_ms:.0f} ms, {o.stop.describe()}"
                           for o in stops if not o.stop.word_kept()]}

    acknowledged = listened(acknowledgements)
    return {
        "interim_delay_ms": interim_ms,
        "interruptions": len(interruptions), "interruptions_stopped": len(stopped),
        "interruptions_stood": sum(not o.resumed for o in stopped),
        "reaction_p50_ms": rounded(percentile(reactions, 0.5)), "reaction_p95_ms": rounded(percentile(reactions, 0.95)),
        "reaction_max_ms": rounded(max(reactions, default=None)),
        "stopped_before_first_stt_words": before_words,
        "acknowledgements": acknowledged,
        "acknowledged_ok_rate": round(acknowledged["ok"] / max(acknowledged["count"], 1), 3),
        "noises": listened(noises),
    }


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def report(figures: dict) -> None:
    for row in figures["by_interim_delay"]:
        print(f"  STT's first interim {row['interim_delay_ms']} ms into speech:")
        print(f"    reaction over {row['interruptions_stopped']}/{row['interruptions']} interruptions: "
              f"p50 {row['reaction_p50_ms']} ms, p95 {row['reaction_p95_ms']} ms, max {row['reaction_max_ms']} ms; "
              f"{row['stopped_before_first_stt_words']} stopped before the STT's first words; "
              f"{row['interruptions_stood']} stood (answered)")
        for name in ("acknowledgements", "noises"):
            group = row[name]
            print(f"    {name}: {group['count']}, stopped the bot {group['stopped']}, went on {group['resumed']} "
                  f"({group['resumed_word_kept']} from the first unheard word); gap p50 {group['gap_p50_ms']} ms, "
                  f"p95 {group['gap_p95_ms']} ms, max {group['gap_max_ms']} ms"
                  + (f"; wrong: {group['not_ok']}" if group["not_ok"] else ""))
        verdict = _verdict(row["reaction_p95_ms"] is not None and row["reaction_p95_ms"] <= TARGETS["reaction_p95_ms"]
                           and row["interruptions_stopped"] == row["interruptions"] == row["interruptions_stood"])
        print(f"    {verdict} reaction p95 {row['reaction_p95_ms']} ms, every interruption stopped the bot and "
              f"stood (target p95 <= {TARGETS['reaction_p95_ms']} ms)")
        rate, gap = row["acknowledged_ok_rate"], row["acknowledgements"]["gap_p95_ms"]
        print(f"    {_verdict(rate >= TARGETS['acknowledged_ok_rate'])} acknowledgements with no word lost or "
              f"repeated: {rate:.1%} (target >= {TARGETS['acknowledged_ok_rate']:.0%})")
        print(f"    {_verdict(gap is None or gap <= TARGETS['resume_gap_p95_ms'])} audible gap p95 {gap} ms "
              f"(target <= {TARGETS['resume_gap_p95_ms']} ms)")
    for name, key in (("echo of the bot, -20 dB, 120 ms late", "echo"), ("steady line noise, -40 dBFS", "noise")):
        row = figures[key]
        print(f"  {_verdict(row['stops'] == TARGETS[key + '_stops'])} {name}: {row['stops']} stops in "
              f"{row['trials']} trials of {TRIAL_S:g} s (target {TARGETS[key + '_stops']})")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer interruptions, acknowledgements and trials")
    parser.add_argument("--interim-delays", default=",".join(map(str, INTERIM_DELAYS_MS)),
                        help="ms into the caller's speech of the STT fake's first interim result (default 100,300,500)")
    parser.add_argument("--trials", type=int, default=None, help="echo and noise trials each (default 50; 10 quick)")
    parser.add_argument("--no-timestamps", action="store_true", help="the voice reports no word timestamps")
    parser.add_argument("--min-speech-ms", type=int, default=None,
                        help="the bots' interruption_min_speech_ms (default: the product's default)")
    parser.add_argument("--serve-vendors", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    delays = [int(value) for value in args.interim_delays.split(",") if value.strip()]
    timestamps = not args.no_timestamps
    if args.serve_vendors:
        return serve_vendors(delays[0], timestamps)
    use_bench_database()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per answered call would bury the figures
    trials = args.trials or (10 if args.quick else 50)
    print(f"Barge-in on live calls (espeak-ng voices; STT endpointing 300 ms, first token "
          f"{LLM_FIRST_TOKEN_S * 1000:.0f} ms, first TTS audio {TTS_FIRST_AUDIO_S * 1000:.0f} ms; the voice "
          f"{'reports' if timestamps else 'does not report'} word timestamps)", flush=True)
    question = question_clip()
    listening = backchannel_clips(2 if args.quick else 5) + noise_clips(1 if args.quick else 2)
    calls = calls_to_make(listening, interruption_clips(6 if args.quick else 20))
    from voicebots.accounts.models import Account

    Account.objects.filter(name=ACCOUNT_NAME).delete()  # a previous run's
    bot = make_bot(min_speech_ms=args.min_speech_ms)
    reader = make_bot("barge-in greeting", LONG_GREETING, min_speech_ms=args.min_speech_ms)
    print(f"  the caller's speech that stops the bot: {bot.interruption_min_speech_ms} ms", flush=True)
    vendors = ScriptedVendors(delays[0], timestamps)
    figures: dict = {"timestamps": timestamps, "by_interim_delay": []}
    try:
        server = Server(vendors)
        try:
            for delay in delays:
                print(f"  calls with the STT's first interim {delay} ms into speech:", flush=True)
                vendors.first_interim_after(delay)
                figures["by_interim_delay"].append(summarize(run_calls(server, vendors, bot, question, calls), delay))
            print(f"  echo and line noise: {trials} trials each", flush=True)
            figures["echo"] = run_listeners(server, reader, trials, echo_db=ECHO_DB, noise_rms=0.0)
            figures["noise"] = run_listeners(server, reader, trials, echo_db=None, noise_rms=LINE_NOISE_RMS)
        finally:
            server.stop()
    finally:
        vendors.stop()
    report(figures)
    return figures


if __name__ == "__main__":
    main()
