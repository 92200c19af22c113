"""What a call's socket sends, in order, through a bounded queue so a slow peer cannot block the pipeline.

The pipeline hands over audio 20 ms at a time, but speech usually exists faster than it plays: frames already
waiting go out together, up to `frames_per_message` per message (Plivo advises 20-100 ms per `playAudio`),
which cuts the messages of a reply fivefold without delaying any of them. Other messages (checkpoints, clears)
keep their place between the frames. A peer that stops reading loses audio after `max_items`, never the call:
each send waits at most `send_timeout_s`.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Awaitable, Callable

logger = logging.getLogger(__name__)

MAX_ITEMS = 1500  # 30 s of 20 ms frames
SEND_TIMEOUT_S = 2.0
FRAMES_PER_MESSAGE = 5  # 100 ms of audio per message at most


class Message(str):
    """A message already encoded for the peer (JSON text), as opposed to an audio frame (bytes)."""


Send = Callable[[str | bytes], Awaitable[None]]  # text goes as a text frame, bytes as a binary one
PackAudio = Callable[[bytes], str | bytes]  # consecutive frames joined -> one message for the peer


class Outbox:
    def __init__(self, send: Send, pack_audio: PackAudio, *, label: str = "", max_items: int = MAX_ITEMS,
                 frames_per_message: int = FRAMES_PER_MESSAGE, send_timeout_s: float = SEND_TIMEOUT_S) -> None:
        self._send = send
        self._pack_audio = pack_audio
        self.label = label  # names the call in the log
        self._items: deque[bytes | Message] = deque()
        self._ready = asyncio.Event()
        self._max_items = max_items
        self._frames_per_message = frames_per_message
        self._send_timeout_s = send_timeout_s
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put_audio(self, frame: bytes) -> None:
        self._put(frame)

    def put_message(self, text: str) -> None:
        self._put(Message(text))

    def drop_audio_and_send(self, text: str) -> None:
        """A clear: what was not sent yet need not be cleared by the peer; then `text` (the clear message)."""
        self._items.clear()
        self._put(Message(text))

    def _put(self, item: bytes | Message) -> None:
        if len(self._items) >= self._max_items:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("The peer of call %s is not reading its stream; dropping audio", self.label)
            return
        self._items.append(item)
        self._ready.set()

    def _next(self) -> str | bytes:
        item = self._items.popleft()
        if isinstance(item, Message):
            return str(item)
        audio = [item]
        items = self._items
        while items and not isinstance(items[0], Message) and len(audio) < self._frames_per_message:
            audio.append(items.popleft())
        return self._pack_audio(b"".join(audio))

    async def pump(self) -> None:
        """Send everything in order, for as long as the call lasts (cancel it to stop)."""
        while True:
            if not self._items:
                self._ready.clear()
                await self._ready.wait()
                continue
            message = self._next()
            try:
                async with asyncio.timeout(self._send_timeout_s):
                    await self._send(message)
            except TimeoutError:
                self.dropped += 1
