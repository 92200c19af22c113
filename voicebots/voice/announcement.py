"""A call that only plays a fixed message and hangs up: what a transport runs instead of a CallSession when no
conversation is possible (a provider key is missing), with pre-rendered apology audio."""
from __future__ import annotations

import asyncio
import logging

from .playout import Playout, checkpoint_name
from .ports import Transport

logger = logging.getLogger(__name__)

PLAYBACK_MARGIN_S = 2.0


class Announcement:
    """A CallHandler: plays `audio` (in the transport's output format), waits until the caller has heard it
    (checkpoint ack, or its duration plus a margin), then hangs up."""

    def __init__(self, transport: Transport, audio: bytes, text: str = "") -> None:
        self._transport = transport
        self._audio = audio
        self._text = text
        self._playout = Playout(transport)
        self._played = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="announcement")

    async def _run(self) -> None:
        await self._playout.play(0, self._audio)
        await self._playout.end_segment(0, 0, self._text)
        try:
            async with asyncio.timeout(self._transport.output_format.duration_ms(len(self._audio)) / 1000
                                       + PLAYBACK_MARGIN_S):
                await self._played.wait()
        except TimeoutError:
            logger.info("No playback acknowledgement for the announcement; hanging up anyway")
        await self._transport.hang_up()

    def feed_audio(self, audio: bytes) -> None:
        pass  # nobody is listening

    def on_checkpoint_played(self, name: str) -> None:
        if name == checkpoint_name(0, 0):
            self._played.set()

    def on_audio_cleared(self) -> None:
        pass

    def on_dtmf(self, digit: str) -> None:
        pass

    async def wait(self) -> None:
        """Until the message was played and the call hung up."""
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
