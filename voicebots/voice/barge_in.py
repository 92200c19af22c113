"""When the caller's words interrupt the bot: enough of them, not counting acknowledgements.

A caller saying "ok", "uh-huh" or "right" while the bot speaks is listening, not taking the turn: those words
(and phrases) are dropped before counting. Interruption is always confirmed by transcript words, never by
sound alone, so a cough or line noise cannot cut the bot off.
"""
from __future__ import annotations

import re
from typing import Iterable

DEFAULT_BACKCHANNEL_WORDS = ("ok", "okay", "yeah", "yep", "uh-huh", "uh huh", "right", "all right", "alright", "mhm",
                             "mm-hmm", "sure", "got it")
_NOT_A_WORD = re.compile(r"[^\w'\s]+")


def _tokens(text: str) -> list[str]:
    # "Uh-huh." and "uh huh" are the same acknowledgement.
    return _NOT_A_WORD.sub(" ", text.lower().replace("-", " ")).split()


class InterruptionRules:
    def __init__(self, *, enabled: bool = True, min_words: int = 1,
                 backchannel_words: Iterable[str] = DEFAULT_BACKCHANNEL_WORDS) -> None:
        self.enabled = enabled
        self.min_words = max(1, min_words)
        phrases = {tuple(_tokens(phrase)) for phrase in backchannel_words}
        self._phrases = sorted((phrase for phrase in phrases if phrase), key=len, reverse=True)

    def meaningful_words(self, text: str, *, partial: bool = False) -> int:
        """Words of `text` that are not acknowledgements. `partial`: the text of an interim result, whose last
        words may be the start of an acknowledgement still being said ("got" of "got it"): they wait."""
        tokens, count, position = _tokens(text), 0, 0
        if partial:
            tokens = tokens[:len(tokens) - self._unfinished_phrase_length(tokens)]
        while position < len(tokens):
            phrase = next((p for p in self._phrases if tuple(tokens[position:position + len(p)]) == p), None)
            if phrase is None:
                count += 1
                position += 1
            else:
                position += len(phrase)
        return count

    def _unfinished_phrase_length(self, tokens: list[str]) -> int:
        """How many of the last tokens are the beginning (not the whole) of an acknowledgement phrase."""
        for phrase in self._phrases:
            for length in range(min(len(phrase) - 1, len(tokens)), 0, -1):
                if tuple(tokens[-length:]) == phrase[:length]:
                    return length
        return 0

    def is_backchannel(self, text: str, *, partial: bool = False) -> bool:
        """Too few meaningful words to take the turn from a speaking bot."""
        return self.meaningful_words(text, partial=partial) < self.min_words
