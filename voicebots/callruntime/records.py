"""Writes a call's turns, incidents and DTMF to its record as they happen, and caches fixed audio."""
from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from voicebots.calls.models import Call, CallEvent, CallTurn
from voicebots.chats.events import passage_dict, tool_call_dict
from voicebots.core import clock
from voicebots.deployment.redis_client import binary_client
from voicebots.voice.audio import MULAW_8K, AudioFormat, convert
from voicebots.voice.ports import BaseCallObserver, TurnRecord

from .database import in_call_database_thread

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "voice" / "assets"
AUDIO_CACHE_SECONDS = 30 * 24 * 3600


def recorded_audio(name: str, audio_format: AudioFormat = MULAW_8K) -> bytes:
    """Pre-recorded audio shipped with the product (8 kHz mu-law, see voice/assets/README.md), in `audio_format`."""
    return convert((ASSETS / f"{name}.ulaw").read_bytes(), MULAW_8K, audio_format)


class AudioCache:
    """The pipeline's AudioCache in Redis: greetings are synthesized once per bot, voice, text and audio format (a
    browser call must not get the phone's mu-law).

    On the process's own pooled client, not Django's cache: that one opens a new Redis connection for every call
    (one cache object per async context), which cost a cached greeting a third of its time."""

    def __init__(self, audio_format: AudioFormat = MULAW_8K) -> None:
        self._format_key = "" if audio_format == MULAW_8K else f"|{audio_format}"
        self._prefetched: dict[str, asyncio.Future[bytes | None]] = {}

    def _key(self, bot_id: str, voice: str, text: str) -> str:
        return "voicebots:audio:" + hashlib.sha256(f"{bot_id}|{voice}|{text}{self._format_key}".encode()).hexdigest()

    def prefetch(self, bot_id: str, voice: str, text: str) -> None:
        """Start reading an entry `get` will soon be asked for (the greeting, while the call's settings load).
        Only a head start: a `get` of any other entry reads Redis as usual."""
        key = self._key(bot_id, voice, text)
        self._prefetched[key] = asyncio.ensure_future(self._read_or_none(key))

    async def get(self, bot_id: str, voice: str, text: str) -> bytes | None:
        key = self._key(bot_id, voice, text)
        if (pending := self._prefetched.pop(key, None)) is not None:
            return await pending
        return await self._read(key)

    async def put(self, bot_id: str, voice: str, text: str, audio: bytes) -> None:
        await asyncio.to_thread(binary_client().set, self._key(bot_id, voice, text), audio, ex=AUDIO_CACHE_SECONDS)

    async def _read(self, key: str) -> bytes | None:
        return await asyncio.to_thread(binary_client().get, key)

    async def _read_or_none(self, key: str) -> bytes | None:
        # None (synthesize) rather than an error nobody may await: the call may end before its greeting.
        try:
            return await self._read(key)
        except Exception:
            logger.exception("Reading cached audio failed")
            return None


class CallRecorder(BaseCallObserver):
    def __init__(self, call: Call) -> None:
        self.call = call
        self._in_order = asyncio.Lock()  # a turn is written more than once: the last version must land last

    async def _write(self, func, **kwargs) -> None:
        async with self._in_order:
            await in_call_database_thread(func)(**kwargs)

    async def on_turn(self, record: TurnRecord) -> None:
        await self._write(
            CallTurn.objects.update_or_create, call=self.call, index=record.index,
            defaults={
                "caller_text": record.caller_text, "bot_text": record.bot_text, "interrupted": record.interrupted,
                "timings": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in record.timings.items()},
                "tool_calls": [tool_call_dict(r.call, r.result) for r in record.tool_calls],
                "passages": [passage_dict(passage) for passage in record.passages],
                # The wall-clock moment of the timings' origin places the turn on the recording's clock.
                "speech_ended_at": (timezone.now() - timedelta(seconds=clock.now() - record.origin)
                                    if record.origin is not None else None),
            },
        )
        if record.error:
            await self.on_incident("turn_error", record.error)

    async def on_incident(self, kind: str, detail: str) -> None:
        await self._write(CallEvent.objects.create, call=self.call, kind=kind, detail={"detail": detail})

    async def on_dtmf(self, digit: str) -> None:
        await self._write(CallEvent.objects.create, call=self.call, kind="dtmf", detail={"digit": digit})
