"""A protocol-accurate fake of Deepgram Aura's streaming REST text-to-speech (`POST /v1/speak`) on 127.0.0.1.

    async with FakeAura(first_chunk_delay_s=0.09) as fake:
        tts = DeepgramAuraTTS(api_key=fake.api_key, voice="asteria", base_url=fake.url)
        ...
        fake.requests[0].query["model"], fake.requests[0].body["text"]

Raw asyncio HTTP/1.1 with keep-alive. Auth is `Authorization: Token <key>` (401 otherwise); the query must
name an Aura model and, with `container=none`, a raw `encoding` (mulaw at 8000 Hz, linear16 at 8-48 kHz) with its
`sample_rate` (400 otherwise). The answer is chunked raw audio sized to the text (`ms_per_char`, the same
non-silent patterns as the Cartesia fake), after `first_chunk_delay_s`. `fail_requests` answers that many
requests with a 500. Clients that go away mid-stream are recorded in `disconnects`.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.cartesia_server import speech_audio
from tests.fakes.loopback import StreamLoopbackServer

DEFAULT_API_KEY = "test-key"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 500: "Internal Server Error"}


@dataclass
class SpeakRequest:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class FakeAura(StreamLoopbackServer):
    def __init__(self, *, api_key: str = DEFAULT_API_KEY, first_chunk_delay_s: float = 0.0, ms_per_char: int = 60,
                 chunk_bytes: int = 1200) -> None:
        super().__init__()
        self.api_key = api_key
        self.first_chunk_delay_s = first_chunk_delay_s
        self.ms_per_char = ms_per_char
        self.chunk_bytes = chunk_bytes
        self.fail_requests = 0
        self.requests: list[SpeakRequest] = []
        self.disconnects = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _on_connection_lost(self) -> None:
        self.disconnects += 1

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request = await self._read_request(reader)
        if request is None:
            return False
        method, target, headers, raw_body = request
        parts = urlsplit(target)
        try:
            body: Any = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        request = SpeakRequest(parts.path, dict(parse_qsl(parts.query)), headers, body)
        self.requests.append(request)

        if method != "POST" or parts.path != "/v1/speak":
            await _send_error(writer, 404, "NOT_FOUND", "Not found.")
        elif headers.get("authorization") != f"Token {self.api_key}":
            await _send_error(writer, 401, "INVALID_AUTH", "Invalid credentials.")
        elif not request.query.get("model", "").startswith("aura-"):
            await _send_error(writer, 400, "INVALID_QUERY_PARAMETER", "Unknown model.")
        elif _raw_format(request.query) is None:
            await _send_error(writer, 400, "UNSUPPORTED_AUDIO_FORMAT", "Unsupported encoding or sample_rate.")
        elif not isinstance(body, dict) or not str(body.get("text", "")).strip():
            await _send_error(writer, 400, "INVALID_INPUT", "text is required.")
        elif self.fail_requests > 0:
            self.fail_requests -= 1
            await _send_error(writer, 500, "INTERNAL_SERVER_ERROR", "The model failed.")
        else:
            await self._stream(writer, request)
        return headers.get("connection", "").lower() != "close"

    async def _stream(self, writer: asyncio.StreamWriter, request: SpeakRequest) -> None:
        audio = speech_audio(request.body["text"], self.ms_per_char, *_raw_format(request.query))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: audio/basic\r\ntransfer-encoding: chunked\r\n"
                     b"dg-model-name: %s\r\ndg-request-id: %s\r\ndg-char-count: %d\r\n\r\n"
                     % (request.query["model"].encode(), str(uuid.uuid4()).encode(), len(request.body["text"])))
        await writer.drain()
        await asyncio.sleep(self.first_chunk_delay_s)
        for offset in range(0, len(audio), self.chunk_bytes):
            chunk = audio[offset:offset + self.chunk_bytes]
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _raw_format(query: dict[str, str]) -> tuple[str, int] | None:
    """The Cartesia-fake encoding name and rate of a raw request (mu-law at 8 kHz when unspecified)."""
    encoding, rate = query.get("encoding", "mulaw"), query.get("sample_rate", "8000")
    rates = {"mulaw": {8000}, "linear16": {8000, 16000, 24000, 32000, 48000}}.get(encoding)
    if rates is None or not rate.isdigit() or int(rate) not in rates:
        return None
    return ("pcm_mulaw" if encoding == "mulaw" else "pcm_s16le"), int(rate)


async def _send_error(writer: asyncio.StreamWriter, status: int, code: str, message: str) -> None:
    data = json.dumps({"err_code": code, "err_msg": message, "request_id": str(uuid.uuid4())}).encode()
    writer.write(f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
                 f"content-length: {len(data)}\r\n\r\n".encode() + data)
    await writer.drain()
