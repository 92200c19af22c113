"""A protocol-accurate fake of Cartesia's TTS WebSocket (`/tts/websocket`) on 127.0.0.1.

    async with FakeCartesia(first_chunk_delay_s=0.09) as fake:
        tts = CartesiaTTS(api_key=fake.api_key, voice_id="v1", base_url=fake.http_url, websocket_base_url=fake.ws_url)
        ...
        fake.transcripts[context_id], fake.cancelled, fake.requests

Audio is sized to the text: `ms_per_char` of audio per character, in the request's `output_format` (8 bytes a
millisecond of mu-law at 8 kHz, 32 of pcm_s16le at 16 kHz), filled with a fixed non-silent pattern
(`AUDIO_PATTERN` for mu-law, where 0xFF would be silence; `PCM16_PATTERN` for 16-bit PCM), so a test can tell the
fake's speech from padding; or `voice(text, encoding, sample_rate)` makes it (a test's or a benchmark's own
speech) and says where its words lie. An input with `add_timestamps: true` is also answered with a `timestamps`
frame placing its words, in seconds from the start of the context's audio (as Cartesia counts them across
continuations). Each input with a transcript is answered after `first_chunk_delay_s` (the model's
latency) with `chunk` frames of `chunk_bytes`; an input with `flush: true` is answered with `flush_done` (its
`flush_id` counts up from 1 and is echoed on the chunks that precede it); `continue: false` ends the context with
`done`. Contexts run concurrently on one socket; `{"cancel": true}` stops one at once.
Faults: `fail_contexts` answers that many new contexts with an `error` frame; `await fake.drop()` closes every
socket with 1011.
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes.loopback import WebSocketLoopbackServer

DEFAULT_API_KEY = "test-key"
AUDIO_PATTERN = bytes([0x1E, 0x2E, 0x3E, 0x4E, 0x3E, 0x2E, 0x9E, 0xAE, 0xBE, 0xCE, 0xBE, 0xAE])
PCM16_PATTERN = b"".join(value.to_bytes(2, "little", signed=True)
                         for value in (3000, 6000, 9000, 6000, 3000, 0, -3000, -6000, -9000, -6000, -3000, 0))
PCM_F32_PATTERN = struct.pack("<4f", 0.1, 0.2, -0.1, -0.2)
BYTES_PER_MS = 8
ENCODINGS = {"pcm_f32le": 4, "pcm_s16le": 2, "pcm_mulaw": 1, "pcm_alaw": 1}  # bytes a sample
SAMPLE_RATES = {8000, 16000, 22050, 24000, 44100, 48000}
PATTERNS = {"pcm_mulaw": AUDIO_PATTERN, "pcm_alaw": AUDIO_PATTERN, "pcm_s16le": PCM16_PATTERN,
            "pcm_f32le": PCM_F32_PATTERN}
# A voice: (text, encoding, sample rate) -> (audio, [(word, start s, end s)] within that audio).
Voice = Callable[[str, str, int], tuple[bytes, list[tuple[str, float, float]]]]


def speech_audio(text: str, ms_per_char: int = 60, encoding: str = "pcm_mulaw", sample_rate: int = 8000) -> bytes:
    """The fake's audio for `text`, in Cartesia's `encoding` at `sample_rate`."""
    bytes_per_ms = sample_rate * ENCODINGS[encoding] // 1000
    size = len(text) * ms_per_char * bytes_per_ms
    pattern = PATTERNS[encoding]
    return (pattern * (size // len(pattern) + 1))[:size]


def pattern_voice(ms_per_char: int) -> Voice:
    """The default voice: pattern audio sized to the text, each word where its characters are."""
    def voice(text: str, encoding: str, sample_rate: int) -> tuple[bytes, list[tuple[str, float, float]]]:
        words = [(match.group(), match.start() * ms_per_char / 1000, match.end() * ms_per_char / 1000)
                 for match in re.finditer(r"\S+", text)]
        return speech_audio(text, ms_per_char, encoding, sample_rate), words
    return voice


@dataclass
class Handshake:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Context:
    context_id: str
    inputs: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    flush_id: int = 1
    audio_s: float = 0.0  # audio of the context so far: where the next input's words start


class FakeCartesia(WebSocketLoopbackServer):
    def __init__(self, *, api_key: str = DEFAULT_API_KEY, first_chunk_delay_s: float = 0.0, ms_per_char: int = 60,
                 chunk_bytes: int = 1000, chunk_interval_s: float = 0.0, voice: Voice | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.first_chunk_delay_s = first_chunk_delay_s
        self.ms_per_char = ms_per_char
        self.voice = voice or pattern_voice(ms_per_char)
        self.chunk_bytes = chunk_bytes
        self.chunk_interval_s = chunk_interval_s
        self.fail_contexts = 0
        self.handshakes: list[Handshake] = []
        self.rejected: list[int] = []
        self.requests: list[dict[str, Any]] = []  # every client message, in order
        self.transcripts: dict[str, str] = {}  # context_id -> concatenated transcript
        self.first_input_at: dict[str, float] = {}
        self.cancelled: list[str] = []
        self.audio_sent: dict[str, int] = {}  # context_id -> audio bytes sent

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query))
        if parts.path != "/tts/websocket":
            self.rejected.append(404)
            return connection.respond(404, "Not Found\n")
        keys = {request.headers.get("Authorization", "").removeprefix("Bearer "), request.headers.get("X-API-Key"),
                query.get("api_key"), query.get("access_token")}
        if self.api_key not in keys:
            self.rejected.append(401)
            return connection.respond(401, "Unauthorized\n")
        if not (request.headers.get("Cartesia-Version") or query.get("cartesia_version")):
            self.rejected.append(400)
            return connection.respond(400, "Cartesia-Version is required\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        self.handshakes.append(Handshake(*self._handshake(connection)))
        self._open.add(connection)
        contexts: dict[str, _Context] = {}
        try:
            async for raw in connection:
                message = json.loads(raw)
                self.requests.append(message)
                await self._on_message(connection, contexts, message)
        except ConnectionClosed:
            pass
        finally:
            self._open.discard(connection)
            workers = [context.worker for context in contexts.values() if context.worker is not None]
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _on_message(self, connection: ServerConnection, contexts: dict[str, _Context],
                          message: dict[str, Any]) -> None:
        context_id = message.get("context_id", "")
        if message.get("cancel"):
            self.cancelled.append(context_id)
            context = contexts.get(context_id)
            if context is not None and context.worker is not None:
                context.worker.cancel()
            return
        if (problem := _invalid(message)) is not None:
            await _send(connection, _error(context_id, 400, "Invalid request", problem))
            return
        context = contexts.get(context_id)
        if context is None:
            context = contexts[context_id] = _Context(context_id)
            self.first_input_at[context_id] = asyncio.get_running_loop().time()
            if self.fail_contexts > 0:
                self.fail_contexts -= 1
                await _send(connection, _error(context_id, 500, "Internal error", "The model failed."))
                return
            context.worker = asyncio.create_task(self._speak(connection, context))
        self.transcripts[context_id] = self.transcripts.get(context_id, "") + message.get("transcript", "")
        context.inputs.put_nowait(message)

    async def _speak(self, connection: ServerConnection, context: _Context) -> None:
        context_id = context.context_id
        while True:
            message = await context.inputs.get()
            if text := message.get("transcript", ""):
                await asyncio.sleep(self.first_chunk_delay_s)
                output = message["output_format"]
                audio, words = self.voice(text, output["encoding"], output["sample_rate"])
                if message.get("add_timestamps") and words:
                    await _send(connection, {
                        "type": "timestamps", "context_id": context_id, "done": False, "status_code": 206,
                        "flush_id": context.flush_id, "word_timestamps": {
                            "words": [word for word, _, _ in words],
                            "start": [round(context.audio_s + start, 4) for _, start, _ in words],
                            "end": [round(context.audio_s + end, 4) for _, _, end in words]}})
                context.audio_s += len(audio) / (output["sample_rate"] * ENCODINGS[output["encoding"]])
                for offset in range(0, len(audio), self.chunk_bytes):
                    data = base64.b64encode(audio[offset:offset + self.chunk_bytes]).decode()
                    await _send(connection, {"type": "chunk", "context_id": context_id, "data": data, "done": False,
                                             "status_code": 206, "step_time": 12.5, "flush_id": context.flush_id})
                    self.audio_sent[context_id] = self.audio_sent.get(context_id, 0) + min(
                        self.chunk_bytes, len(audio) - offset)
                    if self.chunk_interval_s:
                        await asyncio.sleep(self.chunk_interval_s)
            if message.get("flush"):
                await _send(connection, {"type": "flush_done", "context_id": context_id, "done": False,
                                         "flush_done": True, "flush_id": context.flush_id, "status_code": 206})
                context.flush_id += 1
            if not message.get("continue", False):
                await _send(connection, {"type": "done", "context_id": context_id, "done": True, "status_code": 206})
                return


def _invalid(message: dict[str, Any]) -> str | None:
    output = message.get("output_format") or {}
    if not message.get("context_id"):
        return "context_id is required"
    if not message.get("model_id"):
        return "model_id is required"
    if not message.get("voice"):
        return "voice is required"
    if output.get("container") != "raw" or output.get("encoding") not in ENCODINGS:
        return f"unsupported output_format {output!r}"
    if output.get("sample_rate") not in SAMPLE_RATES:
        return f"unsupported sample_rate {output.get('sample_rate')!r}"
    return None


def _error(context_id: str, status: int, title: str, text: str) -> dict[str, Any]:
    return {"type": "error", "context_id": context_id, "done": True, "status_code": status, "title": title,
            "message": text, "error_code": "fake_error", "request_id": "req_fake"}


async def _send(connection: ServerConnection, payload: dict[str, Any]) -> None:
    await connection.send(json.dumps(payload))
