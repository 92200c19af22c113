"""The call pipeline's SpeechToText on Deepgram's live transcription WebSocket (listen v1, Nova), via
deepgram-sdk's async socket client. The audio is raw, in the transport's format (mu-law at 8 kHz from the phone,
linear16 at 16 kHz from a browser), declared in the query.

One WebSocket per connect(); the session reconnects after a SpeechToTextError. A KeepAlive goes out whenever
no audio has been sent for `keepalive_s` (Deepgram closes an idle stream after 10 s), and CloseStream on close
so Deepgram flushes before hanging up.

The socket is opened here and handed to the SDK's socket client, which does the sending: the SDK's own
`connect()` always offers permessage-deflate, and compressing 50 audio frames a second per call was a tenth
of a busy server's event loop for almost no bytes saved. Results are read here from the JSON: the SDK's
typed parsing tries each message type of a union in turn, 7% of a busy server's event loop for the ten
interim results a second of each talking caller.
"""
from __future__ import annotations

import asyncio
import json
import logging
from contextlib import AsyncExitStack
from typing import Any, AsyncIterator
from urllib.parse import urlencode

from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1.socket_client import AsyncV1SocketClient
from websockets.exceptions import ConnectionClosed
from websockets.legacy.client import connect as websocket_connect

from voicebots.core import clock
from voicebots.voice.audio import MULAW_8K, AudioFormat
from voicebots.voice.ports import SpeechStarted, SpeechToTextError, SpeechToTextEvent, Transcript, UtteranceEnd

logger = logging.getLogger(__name__)

PRODUCTION_WEBSOCKET = DeepgramClientEnvironment.PRODUCTION.production
CLOSE_TIMEOUT_S = 1.0
KEEPALIVE_CHECK_S = 0.5


class DeepgramSTT:
    def __init__(self, api_key: str, *, model: str = "nova-3", language: str = "en", endpointing_ms: int = 300,
                 utterance_end_ms: int = 1000, interim_results: bool = True, vad_events: bool = True,
                 smart_format: bool = True, punctuate: bool = True, websocket_url: str | None = None,
                 keepalive_s: float = 5.0, connect_timeout_s: float = 5.0,
                 audio_format: AudioFormat = MULAW_8K) -> None:
        self._url = (websocket_url or PRODUCTION_WEBSOCKET) + "/v1/listen"
        self._headers = {"Authorization": f"Token {api_key}"}
        # Deepgram's names for our two formats are ours: `mulaw` and `linear16`.
        self._params: dict[str, Any] = {
            "model": model, "language": language, "encoding": audio_format.encoding,
            "sample_rate": audio_format.sample_rate, "channels": 1,
            "interim_results": interim_results, "endpointing": endpointing_ms, "utterance_end_ms": utterance_end_ms,
            "vad_events": vad_events, "smart_format": smart_format, "punctuate": punctuate,
        }
        self._keepalive_s = keepalive_s
        self._connect_timeout_s = connect_timeout_s
        self._socket: Any = None  # deepgram's AsyncV1SocketClient
        self._messages: Any = None  # its websocket, read directly
        self._exit_stack: AsyncExitStack | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._last_sent = 0.0
        self._closing = False

    async def connect(self) -> None:
        await self._disconnect()
        self._closing = False
        stack = AsyncExitStack()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                protocol = await stack.enter_async_context(websocket_connect(
                    f"{self._url}?{urlencode(_query(self._params))}", extra_headers=self._headers, compression=None))
            socket = AsyncV1SocketClient(websocket=protocol)
        except Exception as error:  # refused, rejected (HTTP 401...), timed out: all mean "not connected"
            await stack.aclose()
            if getattr(error, "status_code", None) in (401, 403):  # the legacy client's InvalidStatusCode
                raise SpeechToTextError(f"Deepgram rejected the API key (HTTP {error.status_code})") from error
            raise SpeechToTextError(f"Deepgram could not be reached: {error}") from error
        self._socket, self._messages, self._exit_stack = socket, protocol, stack
        self._last_sent = clock.now()
        self._keepalive = asyncio.create_task(self._keep_alive(socket), name="deepgram-keepalive")

    async def send_audio(self, audio: bytes) -> None:
        await self._send(lambda socket: socket.send_media(audio))

    async def finalize(self) -> None:
        await self._send(lambda socket: socket.send_finalize())

    async def _send(self, send: Any) -> None:
        socket = self._socket
        if socket is None:
            raise SpeechToTextError("Deepgram is not connected")
        try:
            await send(socket)
        except (ConnectionClosed, OSError) as error:
            raise SpeechToTextError(f"Deepgram connection lost: {error}") from error
        self._last_sent = clock.now()

    async def events(self) -> AsyncIterator[SpeechToTextEvent]:
        messages = self._messages
        if messages is None:
            raise SpeechToTextError("Deepgram is not connected")
        try:
            async for message in messages:
                event = _to_event(message)
                if event is not None:
                    yield event
        except ConnectionClosed as error:
            raise SpeechToTextError(f"Deepgram closed the stream: {error}") from error
        if not self._closing:
            raise SpeechToTextError("Deepgram closed the stream")

    async def aclose(self) -> None:
        self._closing = True
        if self._socket is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self._socket.send_close_stream()  # Deepgram flushes, sends Metadata, closes
            except Exception:  # already gone: nothing to flush
                logger.debug("CloseStream not sent", exc_info=True)
        await self._disconnect()

    async def _disconnect(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            await asyncio.gather(self._keepalive, return_exceptions=True)
            self._keepalive = None
        stack, self._exit_stack, self._socket, self._messages = self._exit_stack, None, None, None
        if stack is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await stack.aclose()
            except Exception:  # a dead socket may not complete the closing handshake
                logger.debug("Deepgram socket closed uncleanly", exc_info=True)

    async def _keep_alive(self, socket: Any) -> None:
        while True:
            await asyncio.sleep(min(KEEPALIVE_CHECK_S, self._keepalive_s))
            if clock.now() - self._last_sent >= self._keepalive_s:
                try:
                    await socket.send_keep_alive()
                except (ConnectionClosed, OSError):
                    return  # the reader reports the loss
                self._last_sent = clock.now()


def _query(params: dict[str, Any]) -> dict[str, Any]:
    return {name: str(value).lower() if isinstance(value, bool) else value for name, value in params.items()}


def _to_event(message: str | bytes) -> SpeechToTextEvent | None:
    try:
        data = json.loads(message)
        kind = data.get("type")
        if kind == "Results":
            alternatives = data["channel"]["alternatives"]
            best = alternatives[0] if alternatives else {}
            start = float(data.get("start", 0.0))
            return Transcript(text=best.get("transcript", ""), is_final=bool(data.get("is_final")),
                              speech_final=bool(data.get("speech_final")),
                              from_finalize=bool(data.get("from_finalize")), start_s=start,
                              end_s=start + float(data.get("duration", 0.0)),
                              confidence=float(best.get("confidence", 0.0)))
        if kind == "SpeechStarted":
            return SpeechStarted(at_s=float(data["timestamp"]))
        if kind == "UtteranceEnd":
            return UtteranceEnd(last_word_end_s=float(data["last_word_end"]))
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        logger.warning("Skipped a malformed Deepgram message: %.200r", message)
        return None
    if kind == "Error":
        logger.warning("Deepgram error: %s", data.get("description", data))
    return None  # Metadata and the like carry nothing the call needs
