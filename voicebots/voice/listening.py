"""The call's ear: one speech-to-text stream kept open for the whole call, fed with the caller's audio.

A lost stream is reopened (with the waits of `stt_reconnect_delays_s`) and the caller audio of the last
`stt_backlog_s` that it missed is sent again once it is back. Quiet audio is sent in messages of
`stt_message_frames` frames; speech goes at once, since barge-in and endpoints wait on it. On a noisy line the
vendor's endpointing may never fire, so once the line has been quiet for `finalize_after_silence_s` with words
still unfinalized, the listener asks for the final transcript itself.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import Awaitable, Callable

from voicebots.core import clock

from .audio import AudioFormat
from .ports import IncidentKind, SpeechToText, SpeechToTextError, SpeechToTextEvent, VoiceActivityDetector

logger = logging.getLogger(__name__)

FRAMES_PER_SECOND = 50
STT_MESSAGE_MAX_FRAMES = 5  # backlogged caller audio goes to the STT in messages of up to 100 ms

OnEvent = Callable[[SpeechToTextEvent], Awaitable[None]]
OnIncident = Callable[[IncidentKind, str], Awaitable[None]]


class SpeechListener:
    def __init__(self, stt: SpeechToText, activity: VoiceActivityDetector, *, on_event: OnEvent,
                 on_incident: OnIncident, on_lost: Callable[[], None], words_pending: Callable[[], bool],
                 reconnect_delays_s: tuple[float, ...], backlog_s: float, message_frames: int, speech_rms: float,
                 finalize_after_silence_s: float | None, audio_format: AudioFormat) -> None:
        self._stt = stt
        self._activity = activity
        self._on_event = on_event
        self._on_incident = on_incident
        self._on_lost = on_lost  # the stream's unfinalized words will be transcribed again from the backlog
        self._words_pending = words_pending
        self._reconnect_delays_s = reconnect_delays_s
        self._message_frames = message_frames
        self._speech_rms = speech_rms
        self._format = audio_format
        self._finalize_after_silence_s = finalize_after_silence_s
        # Caller audio not yet sent to the STT; while the stream is down the latest of it waits here.
        self._backlog: deque[bytes] = deque(maxlen=max(1, int(backlog_s * FRAMES_PER_SECOND)))
        self._audio_due = asyncio.Event()  # the backlog should go to the STT now
        self._open = asyncio.Event()
        self._finalize_requested = False

    def feed(self, audio: bytes) -> None:
        self._backlog.append(audio)
        # Quiet audio waits for more to share a message; speech goes at once (barge-in, endpoints).
        if len(self._backlog) >= self._message_frames or self._format.rms(audio) >= self._speech_rms:
            self._audio_due.set()

    def words_heard(self) -> None:
        """New words: a later quiet line may need a finalize again."""
        self._finalize_requested = False

    async def listen(self) -> None:
        """Keep the stream open for the whole call, reopening it when it is lost; hand its events on."""
        delays = self._reconnect_delays_s
        failures = 0
        lost = False
        while True:
            try:
                await self._stt.connect()
                self._open.set()
                if lost:
                    await self._on_incident("stt_reconnected", f"after {failures} attempt(s)")
                    lost = False
                async for event in self._stt.events():
                    failures = 0  # the stream works again: a later loss gets the full retry budget
                    await self._on_event(event)
                raise SpeechToTextError("the stream ended")  # only the end of the call may end listening
            except SpeechToTextError as error:
                self._open.clear()
                self._on_lost()
                lost = True
                if failures >= len(delays):
                    logger.error("Speech-to-text lost for good: %s", error)
                    await self._on_incident("stt_lost", str(error))
                    return
                logger.warning("Speech-to-text lost (%s); reconnecting", error)
                await asyncio.sleep(delays[failures])
                failures += 1

    async def forward_audio(self) -> None:
        """Send the backlog to the STT whenever `feed` says it is due and the stream is open."""
        backlog = self._backlog
        while True:
            await self._audio_due.wait()
            await self._open.wait()
            self._audio_due.clear()
            try:
                while backlog:  # frames that arrive during a send go in the next message
                    frames = min(len(backlog), STT_MESSAGE_MAX_FRAMES)
                    await self._stt.send_audio(b"".join(itertools.islice(backlog, frames)))
                    for _ in range(frames):
                        backlog.popleft()
                await self._finalize_if_quiet()
            except SpeechToTextError:
                self._open.clear()  # the listener sees the loss too and reconnects

    async def finalize_now(self) -> None:
        """Ask for the final transcript of what the caller said so far, now (a barge-in waits on it)."""
        if not self._open.is_set():
            return
        self._finalize_requested = True
        try:
            await self._stt.finalize()
        except SpeechToTextError:
            self._open.clear()  # the listener sees the loss too and reconnects

    async def _finalize_if_quiet(self) -> None:
        wait = self._finalize_after_silence_s
        if wait is None or self._finalize_requested or not self._words_pending():
            return
        silent_for = self._activity.silent_for(clock.now())
        if silent_for is not None and silent_for >= wait:
            self._finalize_requested = True
            await self._stt.finalize()
