"""Barge-in: react to the caller's voice at once, let their words decide.

When the caller's voice is heard while the bot speaks (or is about to), the bot's audio stops at once: the
playout holds the turn and clears the transport's buffer. The reply itself goes on being written and voiced
into the held turn. Then the words decide:
- words that are not an acknowledgement end the caller's turn: the interruption stands (the session cancels the
  reply and answers them);
- only an acknowledgement ("ok", "mm-hmm"), or no words at all once the caller has been quiet for a while (a
  cough, a noise, words the transcript revised away): the turn resumes from the first word the caller did not hear,
  from the audio kept, with nothing repeated or skipped.

Waiting for words is cut short: once the caller has been quiet for `quiet_s`, the STT is asked for its final
transcript at once (Deepgram's Finalize), instead of waiting for its endpointing, and if the words so far (interim
ones too) are only an acknowledgement the turn resumes then; with no words at all, it resumes once the caller has
been quiet for `words_wait_s`.

`InterruptionRules` says which words count: "ok", "uh-huh" or "right" while the bot speaks are listening, not
taking the turn, so those words (and phrases) are dropped before counting.
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable

from voicebots.core import clock

from .playout import Playout

logger = logging.getLogger(__name__)

DEFAULT_BACKCHANNEL_WORDS = ("ok", "okay", "yeah", "yep", "uh-huh", "uh huh", "right", "all right", "alright", "mhm",
                             "mm-hmm", "sure", "got it")
DEFAULT_QUIET_S = 0.15
DEFAULT_WORDS_WAIT_S = 0.5
CHECK_S = 0.02
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


@dataclass(slots=True)
class Pause:
    """A bot turn held because the caller started to speak."""

    turn: int
    heard_at: float  # when the caller's voice was found (the bot went quiet then)
    cut: int | None = None  # the byte of the turn's audio heard up to, once the playout has held it
    finalize_asked: bool = False
    resuming: bool = False


class BargeIn:
    """Holds the bot's turn when the caller's voice is heard, and resumes it when they turn out only to listen.

    The session says when a voice is heard (`voice_heard`) and hands it the caller's finished utterances
    (`take_utterance`); the words and quiet of the line come from `words` (the caller's words not yet answered,
    final or not) and `quiet_for` (seconds since the caller's voice). A resume is reported to `on_resumed`."""

    def __init__(self, playout: Playout, rules: InterruptionRules, *, quiet_s: float = DEFAULT_QUIET_S,
                 words_wait_s: float = DEFAULT_WORDS_WAIT_S, words: Callable[[], str],
                 quiet_for: Callable[[float], float | None], finalize: Callable[[], Awaitable[None]],
                 spawn: Callable[..., object], on_resumed: Callable[[Pause, str, float], Awaitable[None]]) -> None:
        self._playout = playout
        self.rules = rules
        self._quiet_s = quiet_s
        self._words_wait_s = words_wait_s
        self._words = words
        self._quiet_for = quiet_for
        self._finalize = finalize
        self._spawn = spawn
        self._on_resumed = on_resumed
        self.paused: Pause | None = None

    def is_holding(self, turn: int) -> bool:
        return self.paused is not None and self.paused.turn == turn

    def voice_heard(self, turn: int, at: float) -> None:
        """The caller's voice while the bot's `turn` speaks or thinks: hold it now (the caller may interrupt)."""
        if self.paused is not None:
            return
        pause = self.paused = Pause(turn, at)
        self._spawn(self._hold_and_watch(pause))

    async def _hold_and_watch(self, pause: Pause) -> None:
        pause.cut = await self._playout.hold(pause.turn)
        logger.debug("Holding turn %s at byte %s: the caller is speaking", pause.turn, pause.cut)
        while self.paused is pause and not pause.resuming:
            await asyncio.sleep(CHECK_S)
            quiet = self._quiet_for(clock.now())
            if self.paused is not pause or quiet is None or quiet < self._quiet_s:
                continue
            if not pause.finalize_asked:  # the STT need not wait for its endpointing to say what it heard
                pause.finalize_asked = True
                await self._finalize()
            words = self._words()
            if words and self.rules.is_backchannel(words, partial=True):
                await self.resume(repr(words))  # the caller is quiet after an acknowledgement: no need to wait
            elif not words and quiet >= self._words_wait_s:
                await self.resume("no words")

    def take_utterance(self, turn: int, text: str) -> bool:
        """The caller finished an utterance while `turn` was held: True if it was only an acknowledgement (the turn
        goes on); False if it takes the turn (the interruption stands) or nothing was held."""
        if not self.is_holding(turn):
            return False
        if self.rules.is_backchannel(text):
            self._spawn(self.resume(repr(text)))
            return True
        self.paused = None  # the caller takes the turn: the session stops the held reply
        return False

    def nothing_said(self, turn: int) -> None:
        """The STT finalized nothing (a noise, or words revised away): a held turn need not wait for words."""
        if self.is_holding(turn) and not self._words():
            self._spawn(self.resume("no words"))

    def release(self, turn: int) -> Pause | None:
        """Forget the hold of `turn` (it is being stopped or has ended); returns it if there was one."""
        pause = self.paused
        if pause is None or pause.turn != turn:
            return None
        self.paused = None
        return pause

    async def resume(self, after: str) -> None:
        """Play the held turn again from the first word the caller did not hear."""
        pause = self.paused
        if pause is None or pause.resuming:
            return
        pause.resuming = True  # a voice heard from now on is heard over the resumed turn
        while pause.cut is None:  # the hold itself is still being applied
            await asyncio.sleep(CHECK_S)
        point = await self._playout.resume_point(pause.turn, pause.cut)
        if self.paused is not pause:  # the caller took the turn meanwhile
            return
        self.paused = None
        self._spawn(self._on_resumed(pause, after, clock.now() - pause.heard_at))
        await self._playout.resume(pause.turn, point)  # (paced: it returns once the rest of the turn is sent)
