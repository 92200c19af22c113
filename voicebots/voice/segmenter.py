"""Splits the model's streamed text into speakable segments, each sent to TTS as soon as it is complete.

The first segment is cut as early as it can be (at the first clause or sentence end, or at a word boundary once
it grows long) because it alone decides the time to first audio; later segments are whole sentences, which the
voice renders more naturally (the TTS context carries the prosody across segments). Segments keep every
character of the text, so joining them gives the text back exactly (the TTS context continues one segment with
the next, so spaces matter).
"""
from __future__ import annotations

from dataclasses import dataclass

SENTENCE_ENDS = frozenset(".!?")
CLAUSE_ENDS = frozenset(",;:—")
# A period after these is not the end of a sentence.
ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "etc.", "e.g.", "i.e.", "no.", "approx."})


@dataclass(frozen=True, slots=True)
class SegmenterOptions:
    first_min_chars: int = 4  # "Sure," is a segment; "Hi," waits for more
    first_max_chars: int = 28
    min_chars: int = 30
    max_chars: int = 250


class Segmenter:
    def __init__(self, options: SegmenterOptions | None = None) -> None:
        self._options = options or SegmenterOptions()
        self._buffer = ""
        self._emitted = 0

    def feed(self, text: str) -> list[str]:
        """The segments completed by `text` (often none)."""
        self._buffer += text
        segments: list[str] = []
        while (cut := self._find_cut()) is not None:
            segments.append(self._buffer[:cut])
            self._buffer = self._buffer[cut:]
            self._emitted += 1
        return segments

    @property
    def pending(self) -> str:
        """Text fed but not yet cut into a segment."""
        return self._buffer

    def flush(self) -> str | None:
        """The rest of the text, at the end of the reply (None if there is nothing to say)."""
        rest, self._buffer = self._buffer, ""
        if not rest.strip():
            return None
        self._emitted += 1
        return rest

    def _find_cut(self) -> int | None:
        first = self._emitted == 0
        min_chars = self._options.first_min_chars if first else self._options.min_chars
        max_chars = self._options.first_max_chars if first else self._options.max_chars
        ends = SENTENCE_ENDS | CLAUSE_ENDS if first else SENTENCE_ENDS
        buffer = self._buffer
        clause_cut: int | None = None
        for index, char in enumerate(buffer):
            if char == "\n" and index + 1 >= min_chars:
                return _after_whitespace(buffer, index)
            if first and char in CLAUSE_ENDS and index + 1 == len(buffer) and index + 1 >= min_chars \
                    and buffer[index - 1].isalpha():
                return index + 1  # "Sure," ends a clause already: no need to wait for the next token
            # Otherwise punctuation counts once the next character shows it ends a word ("3.5", "1,000" do not).
            if index + 1 >= len(buffer) or not buffer[index + 1].isspace():
                continue
            if char in ends and index + 1 >= min_chars and not _is_abbreviation(buffer, index):
                return _after_whitespace(buffer, index + 1)
            if char in CLAUSE_ENDS and index < max_chars:
                clause_cut = _after_whitespace(buffer, index + 1)
        if len(buffer) <= max_chars:
            return None
        # Too long without a sentence end: cut at a clause end, else at the last word boundary.
        if clause_cut is not None:
            return clause_cut
        space = buffer.rfind(" ", 0, max_chars)
        return space + 1 if space > 0 else max_chars


def _after_whitespace(text: str, index: int) -> int:
    while index < len(text) and text[index].isspace():
        index += 1
    return index


def _is_abbreviation(text: str, period_index: int) -> bool:
    if text[period_index] != ".":
        return False
    word = text[:period_index + 1].rsplit(None, 1)[-1].lower()
    return word in ABBREVIATIONS or (len(word) == 2 and word[0].isalpha())  # an initial: "J."
