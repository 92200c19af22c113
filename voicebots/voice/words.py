"""Where the words of a spoken segment lie in its audio, and which word the caller was hearing at a given byte.

A voice that reports word timestamps (Cartesia) says exactly where each word starts and ends. Otherwise the
words are placed by their share of the segment's characters over the stretch of audio that carries sound,
and each boundary between two words is then moved to the quietest stretch near it (the short pause a voice leaves
between most words): the earlier word ends where that pause begins, and the next one starts there, so a resumed
reply starts cleanly before a word rather than in the middle of one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .audio import MULAW_8K, AudioFormat

WINDOW_MS = 10  # fine enough to find the gap between two words
SOUND_SHARE = 0.1  # a window this fraction of the segment's loudest carries sound (its speech, not the silence)
SNAP_SHARE = 0.4  # a boundary may move by this share of the shorter of its two words
PAUSE_MS = 40  # quiet this long, judged with its neighbours, is a pause between words (a stop's closure is shorter)
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class WordSpan:
    """A word of a segment: its first character in the segment's text, its audio from `start` to `end` (bytes from
    the segment's first byte; `end` None when only the start is known)."""

    char: int
    start: int
    end: int | None = None


def word_offsets(text: str) -> list[int]:
    """The character offset of each word of `text` (words are what whitespace separates)."""
    return [match.start() for match in _WORD.finditer(text)]


def _window_levels(samples: np.ndarray, window: int) -> np.ndarray:
    count = len(samples) // window
    if count == 0:
        return np.zeros(0)
    windows = samples[:count * window].astype(np.float64).reshape(count, window)
    return np.sqrt((windows * windows).mean(axis=1))


def estimated_words(text: str, audio: bytes, audio_format: AudioFormat = MULAW_8K) -> list[WordSpan]:
    """Word spans of a segment without timestamps: by character share, boundaries snapped to quiet windows.
    Offsets are bytes of `audio` (in `audio_format`)."""
    spans = _estimated_samples(text, audio_format.to_pcm16(audio), audio_format.sample_rate * WINDOW_MS // 1000)
    size = audio_format.sample_bytes
    return [WordSpan(span.char, span.start * size, None if span.end is None else span.end * size) for span in spans]


def _estimated_samples(text: str, samples: np.ndarray, window: int) -> list[WordSpan]:
    """`estimated_words` counted in samples, with `window` samples per level."""
    starts = word_offsets(text)
    if not starts:
        return []
    levels = _window_levels(samples, window)
    if not len(levels) or levels.max() == 0:
        return [WordSpan(char, round(len(samples) * char / max(len(text), 1))) for char in starts]
    loud = np.flatnonzero(levels >= levels.max() * SOUND_SHARE)
    sound_start, sound_end = int(loud[0]) * window, (int(loud[-1]) + 1) * window
    # A pause between words lasts longer than the closure of a stop consonant inside one: judge each window with
    # its neighbours, so that only a stretch of quiet wins.
    smoothed = np.convolve(levels, np.ones(3) / 3, mode="same")
    pauses = _pauses(levels, smoothed, int(loud[0]), int(loud[-1]))
    if len(pauses) == len(starts) - 1:  # a pause before every word but the first: they are the boundaries
        bounds = [sound_start] + [at * window for at in pauses]
        return [WordSpan(char, start, bounds[index + 1] if index + 1 < len(bounds) else None)
                for index, (char, start) in enumerate(zip(starts, bounds))]
    first = starts[0]
    span = max(len(text.rstrip()) - first, 1)
    guesses = [sound_start + (sound_end - sound_start) * (char - first) / span for char in starts]
    words = [WordSpan(starts[0], sound_start)]
    for index in range(1, len(guesses)):
        shorter = min(guesses[index] - guesses[index - 1],
                      (guesses[index + 1] if index + 1 < len(guesses) else sound_end) - guesses[index])
        reach = shorter * SNAP_SHARE
        low = max(int((guesses[index] - reach) // window), words[-1].start // window + 1)
        high = min(int((guesses[index] + reach) // window), len(levels) - 1)
        if low > high:
            at = max(round(guesses[index]), words[-1].start)
            words[-1] = WordSpan(words[-1].char, words[-1].start, at)
            words.append(WordSpan(starts[index], at))
            continue
        scores = smoothed[low:high + 1]
        quietest = np.flatnonzero(scores <= scores.min() + 1e-9)
        chosen = low + int(quietest[np.argmin(np.abs((low + quietest) * window - guesses[index]))])
        quiet_from = chosen  # the pause starts where the previous word's sound ends
        while quiet_from > low and levels[quiet_from - 1] <= levels[chosen] + levels.max() * SOUND_SHARE / 4:
            quiet_from -= 1
        words[-1] = WordSpan(words[-1].char, words[-1].start, quiet_from * window)
        words.append(WordSpan(starts[index], quiet_from * window))
    return words


def _pauses(levels: np.ndarray, smoothed: np.ndarray, first: int, last: int) -> list[int]:
    """Windows where a pause of at least `PAUSE_MS` between `first` and `last` begins."""
    threshold = levels.max() * SOUND_SHARE / 4
    quiet = smoothed <= threshold
    needed = PAUSE_MS // WINDOW_MS
    pauses, run = [], 0
    for index in range(first, last + 1):
        if quiet[index]:
            run += 1
            if run == needed:
                start = index - needed + 1
                while start > first and levels[start - 1] <= threshold:  # where the sound itself stops
                    start -= 1
                pauses.append(start)
        else:
            run = 0
    return pauses


def first_unheard(words: list[WordSpan], cut: int, length: int) -> tuple[int, int] | None:
    """(character, byte) where to resume a segment whose audio was heard up to byte `cut`: the start of the word
    being said at the cut (heard in part, so said again), or of the next one when the cut fell in the silence
    after a word. None when every word was heard."""
    if cut <= 0 or not words or cut <= words[0].start:
        return (words[0].char, 0) if words else (0, 0)
    for index, word in enumerate(words):
        next_start = words[index + 1].start if index + 1 < len(words) else length
        if cut < next_start:
            if word.end is not None and cut >= word.end:  # in the gap after a whole word
                return None if index + 1 == len(words) else (words[index + 1].char, next_start)
            return word.char, word.start
    return None
