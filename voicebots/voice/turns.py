"""Turn taking: from the STT's interim and final transcripts and endpoints, when has the caller finished?

The caller's turn ends on a final transcript flagged `speech_final` (the vendor's endpointing heard a pause),
on one produced by our own `finalize()` request, or on `UtteranceEnd` (no new word for a while, the fallback
when noise keeps endpointing from firing). The turn's text is every final of the utterance joined, plus the
last interim if it was never finalized. Nothing is answered for an empty transcript.

Adaptive end of turn (the caller is cut off mid-number far more often than kept waiting):
- A final transcript ending with a question mark ends the turn at once, without waiting for the vendor's endpoint.
- When the endpoint comes but the text so far sounds unfinished (`sounds_unfinished`: it ends with a digit or two
  number words, an e-mail fragment, or a spelled sequence), the turn is held: `CallerPaused(hold_s)` asks the
  session to wait up to `hold_s` more (default 1.5 s) for further words. New words cancel the hold (the next
  endpoint decides again); if none come, `end_held_turn()` ends the turn with what was said.
- While a turn is held, `UtteranceEnd` does not end it: the hold is the longer, deliberate wait.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from .ports import SpeechToTextEvent, Transcript, UtteranceEnd


@dataclass(frozen=True, slots=True)
class CallerSpeaking:
    """The caller is saying words (`words` so far in this utterance, `text`): the barge-in trigger."""

    words: int
    text: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class CallerTurnEnded:
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True, slots=True)
class CallerPaused:
    """The caller paused mid-number, mid-address or mid-spelling: end the turn after `hold_s` unless words come."""

    hold_s: float


TurnSignal = Union[CallerSpeaking, CallerTurnEnded, CallerPaused]

DEFAULT_HOLD_S = 1.5
NUMBER_WORDS = frozenset("zero oh one two three four five six seven eight nine ten double triple hundred "
                         "thousand".split())
EMAIL_JOINERS = frozenset({"at", "dot", "underscore", "dash", "hyphen"})
FULL_EMAIL = re.compile(r"@[\w-]+(\.[\w-]+)*\.[a-z]{2,}$", re.IGNORECASE)
SPELLED = re.compile(r"(?:\b[a-z0-9][\s-]+){2,}[a-z0-9]$", re.IGNORECASE)  # "J O H N", "A-B-C", "4 1 5"


def sounds_unfinished(text: str) -> bool:
    """Whether `text` stops where people pause but go on: a number, an e-mail address, a spelled sequence.

    Ends with a digit ("my number is 415 555"), with two number words ("five five"), with a word an e-mail is
    dictated with ("john dot", "smith at") or a partial address ("john@gmail"), or with three or more single
    letters or digits separated by spaces or dashes ("J O H N", "A-B-C"). A question mark always reads complete.
    """
    text = text.strip()
    if not text or text.endswith("?"):
        return False
    text = text.rstrip(".,!;: ")
    words = text.lower().split()
    if not words:
        return False
    last = words[-1]
    if last[-1].isdigit() or SPELLED.search(text):
        return True
    if "@" in last:
        return not FULL_EMAIL.search(last)
    return last in EMAIL_JOINERS or (len(words) >= 2 and last in NUMBER_WORDS and words[-2] in NUMBER_WORDS)


class TurnTaker:
    def __init__(self, hold_s: float = DEFAULT_HOLD_S) -> None:
        self._hold_s = hold_s
        self._finals: list[str] = []
        self._interim = ""
        self._held = False

    @property
    def has_unfinalized_words(self) -> bool:
        return bool(self._interim)

    @property
    def text(self) -> str:
        """The caller's words not yet answered (finals and the interim so far)."""
        return self._text()

    def forget_interim(self) -> None:
        """The stream was lost: its unfinalized words will be transcribed again from the replayed audio."""
        self._interim = ""

    def on_event(self, event: SpeechToTextEvent) -> list[TurnSignal]:
        if isinstance(event, Transcript):
            return self._on_transcript(event)
        if isinstance(event, UtteranceEnd) and (self._finals or self._interim) and not self._held:
            return [self._end_turn()]
        return []  # SpeechStarted is energy, not words: barge-in waits for a transcript

    def _on_transcript(self, event: Transcript) -> list[TurnSignal]:
        text = event.text.strip()
        if event.is_final:
            if text:
                self._finals.append(text)
            self._interim = ""
        else:
            self._interim = text
        signals: list[TurnSignal] = []
        if text:
            self._held = False  # more words: the next endpoint decides again
            signals.append(CallerSpeaking(self._word_count(), self._text()))
        if not (event.is_final and self._finals):
            return signals
        endpoint = event.speech_final or event.from_finalize
        if text.endswith("?") or (endpoint and not self._should_hold()):
            signals.append(self._end_turn())
        elif endpoint:
            self._held = True
            signals.append(CallerPaused(self._hold_s))
        return signals

    def _should_hold(self) -> bool:
        return self._hold_s > 0 and sounds_unfinished(" ".join(self._finals))

    def end_held_turn(self) -> CallerTurnEnded | None:
        """The hold ran out without new words: the turn ends with what was said (None if it already ended)."""
        if not self._held:
            return None
        return self._end_turn()

    def _word_count(self) -> int:
        return sum(len(part.split()) for part in self._finals) + len(self._interim.split())

    def _text(self) -> str:
        return " ".join(self._finals + ([self._interim] if self._interim else []))

    def _end_turn(self) -> CallerTurnEnded:
        text = self._text()
        self._finals, self._interim, self._held = [], "", False
        return CallerTurnEnded(text)
