"""Turn taking: from the STT's interim and final transcripts and endpoints, when has the caller finished?

The caller's turn ends on a final transcript flagged `speech_final` (the vendor's endpointing heard a pause),
on one produced by our own `finalize()` request, or on `UtteranceEnd` (no new word for a while, the fallback
when noise keeps endpointing from firing). The turn's text is every final of the utterance joined, plus the
last interim if it was never finalized. Nothing is answered for an empty transcript.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .ports import SpeechToTextEvent, Transcript, UtteranceEnd


@dataclass(frozen=True, slots=True)
class CallerSpeaking:
    """The caller is saying words (`words` so far in this utterance): the barge-in trigger."""

    words: int


@dataclass(frozen=True, slots=True)
class CallerTurnEnded:
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())


TurnSignal = Union[CallerSpeaking, CallerTurnEnded]


class TurnTaker:
    def __init__(self) -> None:
        self._finals: list[str] = []
        self._interim = ""

    @property
    def has_unfinalized_words(self) -> bool:
        return bool(self._interim)

    def forget_interim(self) -> None:
        """The stream was lost: its unfinalized words will be transcribed again from the replayed audio."""
        self._interim = ""

    def on_event(self, event: SpeechToTextEvent) -> list[TurnSignal]:
        if isinstance(event, Transcript):
            return self._on_transcript(event)
        if isinstance(event, UtteranceEnd) and (self._finals or self._interim):
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
            signals.append(CallerSpeaking(self._word_count()))
        if event.is_final and (event.speech_final or event.from_finalize) and self._finals:
            signals.append(self._end_turn())
        return signals

    def _word_count(self) -> int:
        return sum(len(part.split()) for part in self._finals) + len(self._interim.split())

    def _end_turn(self) -> CallerTurnEnded:
        parts = self._finals + ([self._interim] if self._interim else [])
        self._finals, self._interim = [], ""
        return CallerTurnEnded(" ".join(parts))
