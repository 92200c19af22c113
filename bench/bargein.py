"""Benchmark of barge-in on live calls: how fast the bot stops talking when the caller talks over it, and how
often it stops when the caller only acknowledges ("okay", "uh-huh") or coughs.

    .venv/bin/python -m bench.bargein [--quick] [--interim-ms 100]

Set-up as in bench.calls: Daphne serving the real ASGI app (a separate process) on the benchmark database, the
vendor fakes of tests/fakes on 127.0.0.1 in another process (the real Deepgram, Anthropic and Cartesia SDK code
of the product runs against them), and callers speaking Plivo's audio-stream protocol (a `PlivoCallSimulator`
that talks over the bot), one call at a time. What the callers say is real speech synthesized with espeak-ng
(five voices and speeds), converted to 8 kHz mu-law and trimmed to start where the voice starts, so the
server's Silero voice detector hears a voice; the noises (coughs, clicks) are synthesized here.

A call: after the greeting the caller asks a question and the bot answers with a long reply (~40 s of audio).
Once the reply has played for 1 s, the caller says two or so acknowledgements or noises, 1.5 s apart, then
interrupts with a sentence ("Wait, stop, I have a question."); the bot answers that with the long reply again,
and the next round begins. Before each clip the STT fake is told what it will hear in it: the clip's words,
punctuated as Deepgram writes them ("Uh-huh.", "Got it."), and nothing for a noise (Deepgram transcribes no
words for a cough or a click, as a rule).

Figures:
- reaction: from the start of the caller's interrupting speech (the beginning of the first 20 ms frame that
  carries it, on the caller's clock: a phone sends a frame once it is full) to the caller receiving
  `clearAudio`, p50/p95 over the interruptions (20, 6 with --quick); target p95 <= 150 ms. Split into the STT
  fake's own wait (the audio it needs before its first interim result, computed from each clip with the fake's
  rule) and the rest, the platform's share: forwarding the audio (in 40 ms messages), handling the interim
  result, Silero's confirmation that a voice is behind the words, cancelling the reply, sending `clearAudio`.
  Also counted: interruptions the platform acted on only at a later interim result than the first with words.
- false interruptions: acknowledgement clips (35, 14 with --quick) that got a `clearAudio` while being said or
  within 1.5 s after (the final transcript comes ~0.35 s after the end, Deepgram's UtteranceEnd 1 s after),
  over all of them; target <= 5%. Per word, and noises separately (as they are transcribed as nothing, they
  show only that sound without words never interrupts).
- control: the interrupting sentences counted as interruptions by the same counter; anything short of all of
  them means the counter is broken and the false-interruption rate proves nothing.

Vendor delays. Deepgram's first interim result with a word comes roughly 100-200 ms after speech starts (a
word must be partly heard, then its streaming latency). The STT fake sends its first interim once it has heard
`--interim-ms` of voiced audio (20 ms frames above its energy threshold), 100 ms by default, the fast end (pass
200 for the slow end); soft onsets ("Hold on", "Excuse me") have quiet first frames, so for them it comes
140-200 ms after the voice starts. Later interims follow at the same pace, revealing a word per 150 ms of
speech; the final comes after the product's endpointing (300 ms of silence) plus 50 ms. The model's first
token 350 ms, the first TTS audio 90 ms, as in bench.calls.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np

from bench.calls import (
    LLM_FIRST_TOKEN_S,
    TTS_FIRST_AUDIO_S,
    Server,
    Vendors,
    answered,
    percentile,
    start_fakes,
)
from bench.calls import make_bot as make_calls_bot
from bench.knowledge import use_bench_database
from bench.speech import spoken, trimmed
from voicebots.telephony.simulator import FRAME_S, PlivoCallSimulator
from voicebots.voice.audio import FRAME_BYTES, MULAW_SILENCE, SAMPLE_RATE, pcm16_to_mulaw, rms

TARGETS = {"reaction_p95_ms": 150, "false_interruption_rate": 0.05}
INTERIM_MS = 100  # the STT fake's first interim after this much voiced audio (see the docstring)
STT_SPEECH_RMS = 500.0  # the STT fake's threshold for a voiced frame
STT_PROCESSING_S = 0.05  # Deepgram's own time for a final, after its endpointing
LEAD_S = 1.0  # the caller lets the bot's reply play this long before talking over it
OBSERVE_S = 1.5  # after a clip, how long a clearAudio still counts as caused by it
BOT_QUIET_S = 3.0  # a bot quiet this long has finished its reply: the caller asks again
ROUNDS_PER_CALL = 5
ACCOUNT_NAME = "bench-bargein"  # not "bench-calls ...": bench.calls deletes those when it starts

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
    stt_wait_ms: float | None = None  # audio the STT fake needs before its first interim with words

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


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


def stt_wait_ms(audio: bytes, transcript: str, interim_ms: int) -> float | None:
    """Audio time from the clip's start to the STT fake's first interim with words (its rule: an interim once
    `interim_ms` of voiced frames were heard)."""
    if not transcript.split():
        return None
    voiced_ms = 0
    for index in range(len(audio) // FRAME_BYTES + 1):
        if rms(audio[index * FRAME_BYTES:(index + 1) * FRAME_BYTES]) >= STT_SPEECH_RMS:
            voiced_ms += 20
        if voiced_ms >= interim_ms:
            return (index + 1) * FRAME_S * 1000
    return None


def make_clip(kind: str, transcript: str, text: str, voice: str, speed: int, interim_ms: int) -> Clip:
    audio = spoken(text, voice, speed)
    return Clip(kind, f"{transcript} ({voice}, {speed} wpm)", transcript, audio,
                stt_wait_ms(audio, transcript, interim_ms))


def backchannel_clips(voices: int, interim_ms: int) -> list[Clip]:
    return [make_clip("backchannel", transcript, text, voice, speed, interim_ms)
            for voice, speed in VOICES[:voices] for transcript, text in BACKCHANNELS.items()]


def noise_clips(each: int) -> list[Clip]:
    return ([Clip("noise", f"cough {n + 1}", "", cough(n)) for n in range(each)]
            + [Clip("noise", f"click {n + 1}", "", click(n)) for n in range(each)])


def interruption_clips(count: int, interim_ms: int) -> list[Clip]:
    clips = []
    for n in range(count):
        voice, speed = VOICES[(n + n // len(INTERRUPTIONS)) % len(VOICES)]
        sentence = INTERRUPTIONS[n % len(INTERRUPTIONS)]
        clips.append(make_clip("interruption", sentence, sentence, voice, speed, interim_ms))
    return clips


def question_clip(interim_ms: int) -> Clip:
    return make_clip("question", QUESTION, QUESTION, *VOICES[0], interim_ms)


def calls_to_make(listening: list[Clip], interruptions: list[Clip]) -> list[list[Clip]]:
    """The clips of each call: rounds of acknowledgements and noises, each round ended by an interruption."""
    listening = random.Random(7).sample(listening, len(listening))  # words, voices and noises mixed
    rounds = len(interruptions)
    plan = [listening[n::rounds] + [interruptions[n]] for n in range(rounds)]
    calls = -(-rounds // ROUNDS_PER_CALL)
    return [sum(plan[n::calls], []) for n in range(calls)]


# --- The vendors -----------------------------------------------------------------------------------


class ScriptedVendors(Vendors):
    """bench.calls' fakes with a long reply, the product's own endpointing, and a line on stdin that tells
    the STT fake what the caller's next utterance says."""

    def __init__(self, interim_ms: int) -> None:
        super().__init__(("bench.bargein", "--serve-vendors", "--interim-ms", str(interim_ms)), stdin=subprocess.PIPE)

    def environment(self) -> dict[str, str]:
        environment = super().environment()
        del environment["STT_ENDPOINTING_MS"]  # bench.calls shortens it; barge-in is measured at the default
        return environment

    def transcribe_next_as(self, transcript: str) -> None:
        """Blocks until the fake has it (a few ms): the clip must not reach it first."""
        self.process.stdin.write(json.dumps(transcript) + "\n")
        self.process.stdin.flush()
        if self.process.stdout.readline().strip() != "ok":
            raise RuntimeError("The vendor fakes stopped")


def serve_vendors(interim_ms: int) -> None:
    """Run the fakes until terminated; print their URLs as one JSON line first, then take transcripts."""
    from tests.fakes.anthropic_server import FakeAnthropic, Text, Turn
    from tests.fakes.cartesia_server import FakeCartesia
    from tests.fakes.deepgram_server import FakeDeepgram

    async def run() -> None:
        llm = FakeAnthropic()
        llm.default_turn = Turn([Text(*LONG_REPLY)], first_token_delay_s=LLM_FIRST_TOKEN_S)
        stt = FakeDeepgram(final_delay_s=STT_PROCESSING_S, speech_rms=STT_SPEECH_RMS, interim_every_ms=interim_ms)
        tts = FakeCartesia(first_chunk_delay_s=TTS_FIRST_AUDIO_S)
        await start_fakes(llm, stt, tts)
        while line := await asyncio.to_thread(sys.stdin.readline):
            while stt.next_transcript():  # what the last clip left unheard (it had fewer bursts of sound)
                pass
            if transcript := json.loads(line):
                stt.script(transcript)  # its first burst of sound; any further ones are heard as nothing
            print("ok", flush=True)

    asyncio.run(run())


# --- The caller ------------------------------------------------------------------------------------


class CallEnded(Exception):
    """The server closed the stream before the caller was done."""


@dataclass
class Outcome:
    clip: Clip
    speech_start_s: float  # on the caller's clock
    cleared_at_s: float | None  # the first clearAudio after it started, if one came in time

    @property
    def interrupted(self) -> bool:
        return self.cleared_at_s is not None

    @property
    def reaction_ms(self) -> float | None:
        return None if self.cleared_at_s is None else (self.cleared_at_s - self.speech_start_s) * 1000


class _Utterance:
    """Audio the caller is saying, and when its first and last frames went out."""

    def __init__(self, audio: bytes) -> None:
        self.audio = audio
        self.position = 0
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[float] = loop.create_future()
        self.ended: asyncio.Future[float] = loop.create_future()


class BargingCaller(PlivoCallSimulator):
    """A caller who talks over the bot: after the greeting it asks `question`, then says each clip once the
    bot's reply has played `LEAD_S` (asking again when the bot has gone quiet), and notes when `clearAudio`
    came back. `transcribe_as` tells the STT fake what the next utterance says."""

    def __init__(self, socket_url: str, *, call_id: str, question: Clip, clips: list[Clip],
                 transcribe_as: Callable[[str], Awaitable[None]]) -> None:
        super().__init__(socket_url, call_id=call_id)
        self.question = question
        self.clips = clips
        self.transcribe_as = transcribe_as
        self.outcomes: list[Outcome] = []
        self._outgoing: deque[_Utterance] = deque()
        self._clears: list[float] = []
        self._bot_audible_since: float | None = None

    async def _speak(self, socket, codec, playback, result, clock, state, speech_end_offsets, reader) -> None:
        self._time_the_clears(playback, clock)
        line = asyncio.create_task(self._keep_the_line(socket, codec, playback, result, clock, reader))
        try:
            await self._converse(playback, result, clock, line)
        except CallEnded:
            pass
        finally:
            line.cancel()
            await asyncio.gather(line, return_exceptions=True)

    def _time_the_clears(self, playback, clock) -> None:
        """The simulator only counts clearAudio; its time is the figure here."""
        clear = playback.clear

        def clear_and_note() -> None:
            self._clears.append(clock())
            clear()

        playback.clear = clear_and_note

    async def _keep_the_line(self, socket, codec, playback, result, clock, reader) -> None:
        """A media frame every 20 ms (what the caller says, or silence), and played checkpoints acknowledged."""
        frame_index = 0
        while not reader.done():
            delay = frame_index * FRAME_S - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -FRAME_S:
                result.late_media_frames += 1
            now = clock()
            self._watch_the_bot(playback, now)
            await socket.send(codec.media(self._next_frame(now), chunk=frame_index, timestamp_ms=int(now * 1000)))
            for name in playback.due_checkpoints():
                result.checkpoints_acked.append(name)
                await socket.send(codec.played(name))
            frame_index += 1

    def _watch_the_bot(self, playback, now: float) -> None:
        if playback.ends_at <= now:
            self._bot_audible_since = None
        elif self._bot_audible_since is None:
            self._bot_audible_since = now

    def _next_frame(self, now: float) -> bytes:
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
        await self._until(lambda: self._ready_to_speak(playback, result, clock()), line, timeout_s=15)
        await self._say(self.question)
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
                quiet_since, asked = clock(), asked + 1
            if line.done():
                raise CallEnded
            await asyncio.sleep(FRAME_S)

    async def _talk_over(self, clip: Clip, clock, line) -> Outcome:
        clears_before = len(self._clears)
        utterance = await self._say(clip)
        start = utterance.started.result()
        deadline = clock() + OBSERVE_S
        await self._until(lambda: len(self._clears) > clears_before or clock() >= deadline, line, timeout_s=5)
        cleared = [at for at in self._clears[clears_before:] if at >= start]
        return Outcome(clip, start, cleared[0] if cleared else None)

    @staticmethod
    async def _until(condition: Callable[[], bool], line: asyncio.Task, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                if line.done():
                    raise CallEnded
                await asyncio.sleep(FRAME_S / 4)
        if line.done():
            raise CallEnded


# --- The benchmark ----------------------------------------------------------------------------------


def make_bot():
    """A bot with the product's default barge-in settings (interruptions on, one word, default backchannels),
    in an account of its own that bench.calls does not clean up under a running benchmark."""
    from voicebots.accounts.models import Account

    Account.objects.filter(name=ACCOUNT_NAME).delete()  # a previous run's
    return make_calls_bot("barge-in", account_name=ACCOUNT_NAME)


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
        print(f"  call {number}/{len(calls)}: {len(clips)} clips, {result.clears} clearAudio, "
              f"{result.late_media_frames} late caller frames", flush=True)
    return outcomes


def summarize(outcomes: list[Outcome], interim_ms: int) -> dict:
    interruptions = [o for o in outcomes if o.clip.kind == "interruption"]
    reacted = [o for o in interruptions if o.interrupted]
    reactions = [o.reaction_ms for o in reacted]
    stt_waits = [o.clip.stt_wait_ms for o in reacted]
    platform = [o.reaction_ms - o.clip.stt_wait_ms for o in reacted]
    # More than half an interim period after the first interim with words: a later one stopped the bot.
    late = sum(share > interim_ms / 2 for share in platform)
    backchannels = [o for o in outcomes if o.clip.kind == "backchannel"]
    noises = [o for o in outcomes if o.clip.kind == "noise"]
    per_word = {word: f"{sum(o.interrupted for o in backchannels if o.clip.transcript == word)}/"
                      f"{sum(o.clip.transcript == word for o in backchannels)}" for word in BACKCHANNELS}
    return {
        "interruptions": len(interruptions), "interruptions_detected": len(reacted),
        "reaction_p50_ms": rounded(percentile(reactions, 0.5)), "reaction_p95_ms": rounded(percentile(reactions, 0.95)),
        "reaction_max_ms": rounded(max(reactions, default=None)),
        "stt_wait_p50_ms": rounded(percentile(stt_waits, 0.5)), "stt_wait_p95_ms": rounded(percentile(stt_waits, 0.95)),
        "platform_p50_ms": rounded(percentile(platform, 0.5)), "platform_p95_ms": rounded(percentile(platform, 0.95)),
        "stopped_at_a_later_interim": late,
        "reactions": [(o.clip.label, rounded(o.reaction_ms), o.clip.stt_wait_ms) for o in reacted],
        "backchannels": len(backchannels), "backchannels_interrupting": sum(o.interrupted for o in backchannels),
        "false_interruption_rate": round(sum(o.interrupted for o in backchannels) / max(len(backchannels), 1), 3),
        "interrupting_per_word": per_word,
        "noises": len(noises), "noises_interrupting": sum(o.interrupted for o in noises),
        "backchannel_reactions_ms": [rounded(o.reaction_ms) for o in backchannels if o.interrupted],
    }


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def report(figures: dict) -> None:
    print(f"  reaction over {figures['interruptions_detected']} interruptions: p50 {figures['reaction_p50_ms']} ms, "
          f"p95 {figures['reaction_p95_ms']} ms, max {figures['reaction_max_ms']} ms; of it the STT fake's wait "
          f"p50 {figures['stt_wait_p50_ms']} ms, the platform's share p50 {figures['platform_p50_ms']} ms, "
          f"p95 {figures['platform_p95_ms']} ms")
    print(f"  stopped only at a later interim result than the first with words: "
          f"{figures['stopped_at_a_later_interim']} of {figures['interruptions_detected']}")
    words = ", ".join(f"{word} {count}" for word, count in figures["interrupting_per_word"].items())
    print(f"  acknowledgements that cut the bot off: {figures['backchannels_interrupting']}/{figures['backchannels']}"
          f" ({words}); noises: {figures['noises_interrupting']}/{figures['noises']}")
    control_ok = figures["interruptions_detected"] == figures["interruptions"] > 0
    print(f"  {'PASS' if control_ok else 'MISS'} control: {figures['interruptions_detected']}/"
          f"{figures['interruptions']} interrupting sentences counted as interruptions")
    p95 = figures["reaction_p95_ms"]
    verdict = "PASS" if p95 is not None and p95 <= TARGETS["reaction_p95_ms"] else "MISS"
    print(f"  {verdict} barge-in reaction p95: {p95} ms (target <= {TARGETS['reaction_p95_ms']} ms)")
    rate = figures["false_interruption_rate"]
    verdict = "PASS" if control_ok and rate <= TARGETS["false_interruption_rate"] else "MISS"
    print(f"  {verdict} false interruptions by acknowledgements: {rate:.1%} "
          f"(target <= {TARGETS['false_interruption_rate']:.0%})")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer interruptions and acknowledgements")
    parser.add_argument("--interim-ms", type=int, default=INTERIM_MS,
                        help="voiced audio the STT fake needs before its first interim result (default 100)")
    parser.add_argument("--serve-vendors", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_vendors:
        return serve_vendors(args.interim_ms)
    use_bench_database()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per answered call would bury the figures
    print(f"Barge-in on live calls (STT fake: first interim after {args.interim_ms} ms of voice, endpointing "
          f"300 ms; espeak-ng voices)", flush=True)
    question = question_clip(args.interim_ms)
    listening = backchannel_clips(2 if args.quick else 5, args.interim_ms) + noise_clips(1 if args.quick else 2)
    calls = calls_to_make(listening, interruption_clips(6 if args.quick else 20, args.interim_ms))
    vendors = ScriptedVendors(args.interim_ms)
    try:
        server = Server(vendors)
        try:
            outcomes = run_calls(server, vendors, make_bot(), question, calls)
        finally:
            server.stop()
    finally:
        vendors.stop()
    figures = {"stt_first_interim_ms": args.interim_ms, **summarize(outcomes, args.interim_ms)}
    report(figures)
    return figures


if __name__ == "__main__":
    main()
