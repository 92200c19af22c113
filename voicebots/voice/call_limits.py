"""The limits of a call: a caller silent for `caller_silence_s` is asked once whether they are still there, then
told goodbye and hung up on; a call reaching `max_call_duration_s` is ended politely."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from voicebots.core import clock

from .ports import IncidentKind

SILENCE_CHECK_S = 0.1


class CallLimits:
    def __init__(self, *, caller_silence_s: float | None, max_call_duration_s: float | None, reprompt_text: str,
                 silence_goodbye_text: str, time_limit_goodbye_text: str, busy: Callable[[], bool],
                 closing: Callable[[], bool], say: Callable[[str], None], say_goodbye: Callable[[str], None],
                 incident: Callable[[IncidentKind, str], Awaitable[None]]) -> None:
        self._caller_silence_s = caller_silence_s
        self._max_call_duration_s = max_call_duration_s
        self._reprompt_text = reprompt_text
        self._silence_goodbye_text = silence_goodbye_text
        self._time_limit_goodbye_text = time_limit_goodbye_text
        self._busy = busy  # the bot speaks or thinks, or the caller is speaking: nobody is silent
        self._closing = closing
        self._say = say
        self._say_goodbye = say_goodbye
        self._incident = incident
        self._last_activity = clock.now()  # of the caller or the bot: silence is counted from it
        self._caller_active_at = 0.0

    def caller_spoke(self, now: float) -> None:
        self._last_activity = self._caller_active_at = now

    async def watch_silence(self) -> None:
        """Re-prompt a silent caller once; if the silence goes on, say goodbye and hang up."""
        timeout = self._caller_silence_s
        if timeout is None:
            return
        reprompted_at: float | None = None
        while not self._closing():
            await asyncio.sleep(SILENCE_CHECK_S)
            now = clock.now()
            if self._busy():
                self._last_activity = now  # silence counts from the end of the bot's speech and the caller's
            if reprompted_at is not None and self._caller_active_at > reprompted_at:
                reprompted_at = None  # the caller answered: a later silence gets a re-prompt again
            if now - self._last_activity < timeout:
                continue
            if reprompted_at is None:
                reprompted_at = now
                self._say(self._reprompt_text)
                self._last_activity = now
            else:
                await self._incident("caller_silent", f"no answer for {timeout:g} s after a re-prompt")
                self._say_goodbye(self._silence_goodbye_text)
                return

    async def limit_duration(self) -> None:
        if self._max_call_duration_s is None:
            return
        await asyncio.sleep(self._max_call_duration_s)
        if self._closing():
            return
        await self._incident("max_duration", f"{self._max_call_duration_s:g} s")
        self._say_goodbye(self._time_limit_goodbye_text)
