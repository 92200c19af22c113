"""No dead air: while the bot owes the caller a reply, the caller does not wait long in silence.

A reply that has let `dead_air_s` pass with nothing audible (since the caller's turn ended, or since the bot's
last audio finished playing) gets a short line said into it: the function's own filler while a function runs
("One moment while I check that."), a "still working on it" line when the same function runs on, or a short
"one moment" while the model is slow to answer (the reply asks it again meanwhile: see `reply.py`). Each line is
a `filler` incident on the call. Failures that end a reply (the model down, no voice) are answered by the session.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Mapping

from voicebots.core import clock

from .bot_turn import BotTurn
from .playout import Playout
from .ports import IncidentKind

logger = logging.getLogger(__name__)

CHECK_S = 0.1


class DeadAirWatch:
    def __init__(self, playout: Playout, *, dead_air_s: float, function_filler: str,
                 function_fillers: Mapping[str, str], still_working_text: str, model_wait_text: str,
                 current_turn: Callable[[], BotTurn | None], held: Callable[[int], bool], closing: Callable[[], bool],
                 incident: Callable[[IncidentKind, str], Awaitable[None]]) -> None:
        self._playout = playout
        self._dead_air_s = dead_air_s
        self._function_filler = function_filler
        self._function_fillers = function_fillers
        self._still_working_text = still_working_text
        self._model_wait_text = model_wait_text
        self._current_turn = current_turn
        self._held = held
        self._closing = closing
        self._incident = incident
        self._filled_calls: set[tuple[int, str]] = set()  # (turn, tool call id) that had their function's filler

    async def watch(self, turn: BotTurn) -> None:
        """Watch a reply while it runs (a reply is owed only until its text is all written and sent)."""
        while not turn.interrupted and (turn.task is None or not turn.task.done()):
            await asyncio.sleep(CHECK_S)
            if self._current_turn() is not turn or not self._owes(turn):
                continue
            now = clock.now()
            silent_since = max(turn.timeline.started, self._playout.play_end, turn.filler_at)
            if now - silent_since >= self._dead_air_s:
                turn.filler_at = now
                await self._fill(turn, now - silent_since)

    def _owes(self, turn: BotTurn) -> bool:
        """The caller is waiting for this reply: it runs, was not cut off, and the caller is not speaking."""
        return (turn.kind == "reply" and turn.running and not turn.interrupted and turn.speech is not None
                and not self._held(turn.index) and not self._closing())

    def line_for(self, turn: BotTurn) -> str | None:
        if turn.waiting == "tool" and turn.tools_running:
            call_id, function = next(iter(turn.tools_running.items()))
            if (turn.index, call_id) in self._filled_calls:
                return self._still_working_text
            self._filled_calls.add((turn.index, call_id))
            return self._function_fillers.get(function) or self._function_filler
        if turn.waiting in ("start", "model"):
            return self._model_wait_text
        return None  # the text is all written: a slow voice is replaced by the fallback voice in time

    async def _fill(self, turn: BotTurn, silent_s: float) -> None:
        text = self.line_for(turn)
        if not text or turn.speech is None:
            return
        before = turn.speech.text
        # Segments join into one spoken text (a voice continues one with the next): keep the words apart.
        turn.speech.say(("" if not before or before[-1].isspace() else " ") + text.strip() + " ")
        turn.fillers += 1
        logger.info("Dead air on turn %s (%s): saying %r", turn.index, turn.waiting, text)
        await self._incident("filler", f"{text!r} after {silent_s:.1f} s of silence (waiting on the {turn.waiting})")
