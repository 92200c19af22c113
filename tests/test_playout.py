"""The playout on its own, on a virtual clock: when each frame plays, holding a turn and resuming it from the
first word the caller did not hear, and where the words of a segment lie in its audio."""
from __future__ import annotations

import asyncio
import time

import numpy as np
from pytest import approx

from tests.test_voice_pipeline import wait_until
from voicebots.voice.audio import FRAME_BYTES, MULAW_8K, MULAW_SILENCE, PCM16_16K, mulaw_to_pcm16, pcm16_to_mulaw
from voicebots.voice.playout import Playout, ResumePoint
from voicebots.voice.words import WordSpan, estimated_words, first_unheard, word_offsets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Line:
    """A transport that only records what it is sent."""

    output_format = MULAW_8K

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    async def send_audio(self, frame: bytes) -> None:
        assert len(frame) == self.output_format.frame_bytes
        self.sent.append(("audio", frame))

    async def checkpoint(self, name: str) -> None:
        self.sent.append(("checkpoint", name))

    async def clear(self) -> None:
        self.sent.append(("clear", None))

    def audio(self) -> bytes:
        return b"".join(item for kind, item in self.sent if kind == "audio")

    def checkpoints(self) -> list[str]:
        return [item for kind, item in self.sent if kind == "checkpoint"]


def numbered(frames: int, first: int = 0) -> bytes:
    """Audio whose every frame is a different byte value, so a test can tell which frame was sent."""
    return b"".join(bytes([(first + n) % 200 + 1]) * FRAME_BYTES for n in range(frames))


async def test_the_clock_says_which_byte_plays_when_and_audio_queues_behind_audio():
    clock, line = Clock(), Line()
    playout = Playout(line, clock)
    await playout.play(0, numbered(10))  # 200 ms of audio sent at once: it plays until 100.2
    kept = playout.audio_of(0)
    assert kept.position(100.0) == 0 and kept.position(100.05) == 400 and kept.position(101.0) == 10 * FRAME_BYTES
    clock.now = 100.1
    await playout.play(0, numbered(5, 10))  # queued behind the first 200 ms
    assert kept.frames[10][0] == approx(100.2) and playout.play_end == approx(100.3)
    assert playout.audible(100.25) and not playout.audible(100.31)
    clock.now = 101.0  # the line ran dry: new audio plays at once
    await playout.play(0, numbered(1, 15))
    assert kept.frames[-1][0] == 101.0 and kept.position(100.9) == 15 * FRAME_BYTES


async def test_the_level_of_the_bots_voice_is_known_for_each_moment():
    clock, line = Clock(), Line()
    playout = Playout(line, clock)
    loud = pcm16_to_mulaw(np.full(FRAME_BYTES * 5, 8000))
    quiet = pcm16_to_mulaw(np.full(FRAME_BYTES * 5, 100))
    await playout.play(0, loud + quiet)  # loud from 100.0 to 100.1, then quiet until 100.2
    assert 7900 < playout.level(100.0, 100.05) < 8100
    assert playout.level(100.15, 100.2) < 110
    assert playout.level(100.5, 101.0) == 0.0


async def test_a_held_turn_sends_nothing_until_resumed_from_the_word_the_caller_was_hearing():
    clock, line = Clock(), Line()
    playout = Playout(line, clock)
    first, second = "One two three. ", "Four five."
    await playout.play(1, numbered(15))
    for word, (start, end) in zip(("One", "two", "three."), ((0, 800), (1000, 1600), (1760, 2400))):
        playout.mark_word(1, start, first.index(word), end)
    await playout.end_segment(1, 0, first)
    assert line.checkpoints() == ["turn1-seg0"]

    clock.now = 100.13  # the caller hears byte 1040: inside "two" (from byte 1000)
    cut = await playout.hold(1)
    assert cut == 1040 and line.sent[-1] == ("clear", None)
    await playout.play(1, numbered(10, 15))  # the rest of the reply comes while the turn is held
    await playout.end_segment(1, 1, second)
    assert line.checkpoints() == ["turn1-seg0"] and len(line.audio()) == 15 * FRAME_BYTES
    assert playout.is_playing(1)

    point = await playout.resume_point(1, cut)
    assert point == ResumePoint(1000, first.index("two"))
    sent_before = len(line.audio())
    await playout.resume(1, point)
    resumed = line.audio()[sent_before:]
    kept = playout.audio_of(1)
    assert resumed.startswith(bytes(kept.audio[1000:2400]))  # from "two" on, nothing skipped, nothing before it
    assert line.checkpoints() == ["turn1-seg0", "turn1-seg0-r1", "turn1-seg1-r1"]
    assert resumed[1280:1440] == bytes(kept.audio[2280:2400]) + bytes([MULAW_SILENCE]) * 40  # segment end padded
    assert resumed[1440:] == bytes(kept.audio[2400:])

    playout.on_played("turn1-seg1-r1")
    assert playout.heard_text(1) == first + second and not playout.is_playing(1)


async def test_a_cut_in_the_silence_after_a_word_resumes_with_the_next_word_and_heard_text_follows_the_cut():
    clock, line = Clock(), Line()
    playout = Playout(line, clock)
    text = "One two three."
    await playout.play(2, numbered(15))
    for word, (start, end) in zip(("One", "two", "three."), ((0, 800), (960, 1600), (1760, 2400))):
        playout.mark_word(2, start, text.index(word), end)
    await playout.end_segment(2, 0, text)
    clock.now = 100.105  # byte 840: "One" was heard whole, "two" not yet
    cut = await playout.hold(2)
    point = await playout.resume_point(2, cut)
    assert point == ResumePoint(960, 4)
    playout.cut_off(2, point)
    assert playout.heard_text(2) == "One " and not playout.is_playing(2)
    assert await playout.play(2, numbered(2)) == 0


async def test_an_acknowledged_segment_counts_as_heard_even_if_the_clock_lags():
    clock, line = Clock(), Line()
    playout = Playout(line, clock)
    await playout.play(3, numbered(5))
    await playout.end_segment(3, 0, "Hello there. ")
    await playout.play(3, numbered(5, 5))
    await playout.end_segment(3, 1, "How are you?")
    playout.on_played("turn3-seg0")
    clock.now = 100.02  # by the clock only the first frame played
    cut = await playout.hold(3)
    point = await playout.resume_point(3, cut)
    assert point.char == len("Hello there. ")  # resumed after the acknowledged segment


async def test_stopping_a_turn_that_plays_nothing_still_clears_and_a_hold_does_not():
    clock, line = Clock(), Line()
    playout = Playout(line, clock)
    await playout.hold(4)
    assert line.sent == []  # the bot was thinking: nothing to clear
    await playout.stop(5)
    assert line.sent == [("clear", None)]


def tone_words(lengths_ms: list[int], gap_ms: int) -> bytes:
    """A loud burst per word, with `gap_ms` of near silence between words."""
    parts = []
    for length in lengths_ms:
        t = np.arange(8 * length) / 8000
        parts.append(pcm16_to_mulaw(6000 * np.sin(2 * np.pi * 300 * t)))
        parts.append(pcm16_to_mulaw(np.full(8 * gap_ms, 20)))
    return b"".join(parts)


def test_estimated_word_boundaries_fall_in_the_gaps_between_words():
    text = "Seven eight tomorrow"
    audio = tone_words([300, 220, 380], gap_ms=80)
    words = estimated_words(text, audio)
    assert [word.char for word in words] == word_offsets(text) == [0, 6, 12]
    true_starts = [0, 8 * 380, 8 * (380 + 300)]
    for word, true_start in zip(words, true_starts):
        assert true_start - 8 * 80 <= word.start <= true_start, (word, true_start)  # in the gap before it


def test_the_first_unheard_word():
    words = [WordSpan(0, 0, 800), WordSpan(4, 960, 1600), WordSpan(8, 1760, None)]
    assert first_unheard(words, 0, 2400) == (0, 0)
    assert first_unheard(words, 500, 2400) == (0, 0)  # "One" heard in part: said again
    assert first_unheard(words, 900, 2400) == (4, 960)
    assert first_unheard(words, 2000, 2400) == (8, 1760)
    assert first_unheard(words, 2400, 2400) is None


class BrowserLine(Line):
    output_format = PCM16_16K


async def test_browser_audio_is_held_and_resumed_on_whole_samples():
    clock, line = Clock(), BrowserLine()
    playout = Playout(line, clock)
    text = "Seven eight tomorrow"
    samples = mulaw_to_pcm16(tone_words([300, 220, 380], gap_ms=80))
    audio = PCM16_16K.from_pcm16(np.repeat(samples, 2))  # the same words at 16 kHz
    await playout.play(7, audio)
    await playout.end_segment(7, 0, text)
    assert {len(frame) for kind, frame in line.sent if kind == "audio"} == {PCM16_16K.frame_bytes}
    clock.now = 100.5003  # inside "eight", not on a whole sample
    cut = await playout.hold(7)
    assert cut % 2 == 0
    point = await playout.resume_point(7, cut)
    assert point.char == text.index("eight") and point.byte % 2 == 0
    assert 2 * 16 * 380 - 2 * 16 * 80 <= point.byte <= 2 * 16 * 380  # in the gap before "eight" (2 bytes a sample)
    before = len(line.audio())
    await playout.resume(7, point)
    assert line.audio()[before:].startswith(audio[point.byte:point.byte + 640])


async def test_audio_goes_out_at_most_ten_seconds_ahead_and_a_hold_ends_the_wait_for_more():
    clock, line = Clock(), Line()
    playout = Playout(line, clock)
    twelve_seconds = numbered(600)
    playing = asyncio.create_task(playout.play(8, twelve_seconds))
    ten_seconds_ahead = 501 * FRAME_BYTES  # and the frame past it
    # Sending 500 frames takes a busy machine more than a moment.
    await wait_until(lambda: len(line.audio()) >= ten_seconds_ahead, timeout=5)
    await asyncio.sleep(0.05)  # it stops there
    assert not playing.done() and len(line.audio()) == ten_seconds_ahead
    started = time.monotonic()
    clock.now = 100.5
    await playout.hold(8)
    await asyncio.wait_for(playing, 0.5)  # the paced send stops waiting at once
    assert time.monotonic() - started < 0.2
    await playout.end_segment(8, 0, "Twelve seconds of words.")  # the voice's end of segment is not held up
    assert playout.audio_of(8).segments[0].end == len(twelve_seconds)
