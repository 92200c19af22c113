"""The call pipeline's TextToSpeech on Cartesia's TTS WebSocket, via the `cartesia` SDK.

One socket per call, one context per bot turn. Each segment is pushed as a continuation of the context,
followed by a manual flush, so the `flush_done` that closes its audio marks where the segment ends (the
session puts a playback checkpoint there). Output is raw audio in the transport's format: pcm_mulaw at 8000 Hz
for the phone, pcm_s16le at 16000 Hz for a browser. Word timestamps are asked for: they place each word in the
audio, so a reply stopped by the caller can go on from a word.

The SDK's own context helper starts a background reader that swallows a dropped connection (its context
queues then wait forever), so this adapter sends requests and reads the socket itself, and fails every open
turn at once when the socket goes.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import uuid
from typing import Any, AsyncIterator

import httpx
from cartesia import AsyncCartesia

from voicebots.voice.audio import MULAW_8K, AudioFormat
from voicebots.voice.ports import SegmentDone, SpeechAudio, SpeechEvent, TextToSpeechError, WordTimes

# Imported at start-up, not in a first call: the client imports its resources on first use (~100 ms of a
# first call), and httpx its transport.
for _module in ("cartesia.resources", "httpcore"):
    importlib.import_module(_module)

logger = logging.getLogger(__name__)

CARTESIA_ENCODINGS = {"mulaw": "pcm_mulaw", "linear16": "pcm_s16le"}


def output_format(audio_format: AudioFormat) -> dict[str, Any]:
    """Cartesia's `output_format` for raw audio in `audio_format`."""
    return {"container": "raw", "encoding": CARTESIA_ENCODINGS[audio_format.encoding],
            "sample_rate": audio_format.sample_rate}

CLOSE_TIMEOUT_S = 1.0


class _Lost:
    """Put in a turn's queue when the socket is gone."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class CartesiaTTS:
    def __init__(self, api_key: str, voice_id: str, *, model_id: str = "sonic-3", language: str = "en",
                 base_url: str | None = None, websocket_base_url: str | None = None,
                 connect_timeout_s: float = 5.0, http_client: httpx.AsyncClient | None = None,
                 audio_format: AudioFormat = MULAW_8K) -> None:
        self.voice_id = voice_id
        self._output_format = output_format(audio_format)
        self._model_id = model_id
        self._language = language
        self._connect_timeout_s = connect_timeout_s
        # A shared HTTP client spares each call the ~30 ms of building a TLS context; it is not ours to close.
        self._owns_http = http_client is None
        self._client = AsyncCartesia(api_key=api_key, base_url=base_url, websocket_base_url=websocket_base_url,
                                     max_retries=0, http_client=http_client)
        self._connection: Any = None  # cartesia's AsyncTTSResourceConnection
        self._reader: asyncio.Task[None] | None = None
        self._queues: dict[str, asyncio.Queue[Any]] = {}
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        async with self._lock:
            if self._reader is not None and not self._reader.done():
                return
            await self._drop_connection()
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    # A fresh manager each time: a manager hands back its first connection even once closed.
                    # No permessage-deflate: it saves few bytes of base64 audio and costs CPU at both ends.
                    connection = await self._client.tts.websocket_connect(
                        websocket_connection_options={"compression": None}).enter()
            except Exception as error:  # refused, rejected, timed out: all mean "no voice"
                raise TextToSpeechError(f"Cartesia could not be reached: {error}") from error
            self._connection = connection
            self._reader = asyncio.create_task(self._read(connection), name="cartesia-reader")

    def start_turn(self) -> CartesiaSpeechTurn:
        context_id = str(uuid.uuid4())
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._queues[context_id] = queue
        return CartesiaSpeechTurn(self, context_id, queue)

    async def aclose(self) -> None:
        await self._drop_connection()
        if self._owns_http:
            await self._client.close()

    def _request(self, context_id: str, transcript: str, *, more: bool, flush: bool = False) -> dict[str, Any]:
        request: dict[str, Any] = {
            "context_id": context_id, "model_id": self._model_id, "transcript": transcript,
            "voice": {"mode": "id", "id": self.voice_id}, "output_format": self._output_format, "continue": more,
            "language": self._language, "max_buffer_delay_ms": 0,  # we send whole phrases: generate at once
            "add_timestamps": True,
        }
        if flush:
            request["flush"] = True
        return request

    async def _send(self, message: dict[str, Any]) -> None:
        connection = self._connection
        if connection is None or self._reader is None or self._reader.done():
            raise TextToSpeechError("Cartesia is not connected")
        try:
            await connection.send(message)
        except Exception as error:
            raise TextToSpeechError(f"Cartesia connection lost: {error}") from error

    def _forget(self, context_id: str) -> None:
        self._queues.pop(context_id, None)

    async def _read(self, connection: Any) -> None:
        reason = "Cartesia closed the connection"
        try:
            async for event in connection:
                queue = self._queues.get(getattr(event, "context_id", None) or "")
                if queue is not None:
                    queue.put_nowait(event)
        except asyncio.CancelledError:
            reason = "the connection was closed"
            raise
        except Exception as error:
            reason = f"Cartesia connection lost: {error}"
        finally:
            for queue in self._queues.values():
                queue.put_nowait(_Lost(reason))

    async def _drop_connection(self) -> None:
        reader, connection = self._reader, self._connection
        self._reader = self._connection = None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if connection is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await connection.close()
            except Exception:
                logger.debug("Cartesia socket closed uncleanly", exc_info=True)


class CartesiaSpeechTurn:
    """One Cartesia context."""

    def __init__(self, owner: CartesiaTTS, context_id: str, queue: asyncio.Queue[Any]) -> None:
        self._owner = owner
        self.context_id = context_id
        self._queue = queue
        self._segments_done = 0
        self._cancelled = False

    async def push(self, segment: str) -> None:
        await self._owner._send(self._owner._request(self.context_id, segment, more=True))
        await self._owner._send(self._owner._request(self.context_id, "", more=True, flush=True))

    async def finish(self) -> None:
        await self._owner._send(self._owner._request(self.context_id, "", more=False))

    async def events(self) -> AsyncIterator[SpeechEvent]:
        try:
            while True:
                event = await self._queue.get()
                if isinstance(event, _Lost):
                    raise TextToSpeechError(event.reason)
                if event.type == "chunk":
                    if audio := event.audio:
                        yield SpeechAudio(audio)
                elif event.type == "timestamps":
                    if (words := event.word_timestamps) is not None and words.words:
                        yield WordTimes(tuple(words.words), tuple(words.start), tuple(words.end))
                elif event.type == "flush_done":
                    yield SegmentDone(self._segments_done)
                    self._segments_done += 1
                elif event.type == "done":
                    return
                elif event.type == "error":
                    raise TextToSpeechError(f"Cartesia: {event.title or 'error'}: {event.message or ''}".strip())
        finally:
            self._owner._forget(self.context_id)

    async def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        self._owner._forget(self.context_id)
        try:
            await self._owner._send({"cancel": True, "context_id": self.context_id})
        except TextToSpeechError:
            pass  # no connection, nothing is being generated
