"""A protocol-accurate fake of Anthropic's Messages API on 127.0.0.1 (raw asyncio HTTP/1.1, SSE).

    async with FakeAnthropic() as fake:
        fake.script(Turn([Text("Hel", "lo.")]))
        ... AnthropicLLM(api_key=fake.api_key, base_url=fake.url) ...
        fake.requests[0].body["system"]

Or, for sync tests: `fake = FakeAnthropic().start_in_thread(); ...; fake.stop()`.

Scripted turns are served in order; when the queue is empty `default_turn` answers. Every request is
recorded (headers and parsed body), and so is every client that goes away mid-response.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator, Union

from tests.fakes.loopback import DISCONNECT_POLL_S, ClientGone, StreamLoopbackServer, client_gone, sleep_unless_gone

DEFAULT_API_KEY = "test-key"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 529: "Overloaded"}


# --- Script ------------------------------------------------------------------------------------------


@dataclass(init=False)
class Text:
    fragments: tuple[str, ...]

    def __init__(self, *fragments: str) -> None:
        self.fragments = fragments


@dataclass
class ToolUse:
    """A tool_use block; `tool_input` is streamed as input_json_delta fragments of `fragment_size` chars."""

    name: str
    tool_input: dict[str, Any]
    id: str = field(default_factory=lambda: f"toolu_{next(_ids):04d}")
    fragment_size: int = 7

    def fragments(self) -> list[str]:
        raw = json.dumps(self.tool_input)
        # A leading empty fragment, as the real API sometimes sends.
        return [""] + [raw[i:i + self.fragment_size] for i in range(0, len(raw), self.fragment_size)]


@dataclass(init=False)
class Thinking:
    fragments: tuple[str, ...]
    signature: str = "sig-fake"

    def __init__(self, *fragments: str, signature: str = "sig-fake") -> None:
        self.fragments = fragments
        self.signature = signature


Block = Union[Text, ToolUse, Thinking]


@dataclass
class Turn:
    """One scripted response.

    `status` answers with that HTTP error instead (with `x-should-retry: false`). `error_after` emits an
    `event: error` of `error_type` after that many content deltas. `delay_s` sleeps between events;
    `first_token_delay_s` sleeps once, before the first content delta (a model's time to first token).
    """

    blocks: list[Block] = field(default_factory=list)
    stop_reason: str = "end_turn"
    delay_s: float = 0.0
    first_token_delay_s: float = 0.0
    status: int | None = None
    error_after: int | None = None
    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"
    usage: dict[str, int] = field(default_factory=lambda: {
        "input_tokens": 42, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048})
    ping: bool = True


_ids = itertools.count(1)


# --- Recording ---------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float


@dataclass
class Disconnect:
    request_index: int
    events_sent: int
    at: float
    error: str


# --- SSE rendering -----------------------------------------------------------------------------------


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def _block_events(index: int, block: Block) -> Iterator[bytes]:
    if isinstance(block, Text):
        yield _sse("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        for fragment in block.fragments:
            yield _sse("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": fragment}})
    elif isinstance(block, ToolUse):
        yield _sse("content_block_start", {"index": index, "content_block": {
            "type": "tool_use", "id": block.id, "name": block.name, "input": {}}})
        for fragment in block.fragments():
            yield _sse("content_block_delta", {"index": index, "delta": {
                "type": "input_json_delta", "partial_json": fragment}})
    else:
        yield _sse("content_block_start", {"index": index, "content_block": {
            "type": "thinking", "thinking": "", "signature": ""}})
        for fragment in block.fragments:
            yield _sse("content_block_delta", {"index": index, "delta": {
                "type": "thinking_delta", "thinking": fragment}})
        yield _sse("content_block_delta", {"index": index, "delta": {
            "type": "signature_delta", "signature": block.signature}})
    yield _sse("content_block_stop", {"index": index})


def _message(turn: Turn, model: str, content: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
    return {"id": f"msg_{next(_ids):06d}", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": None, "usage": dict(turn.usage)}


def stream_events(turn: Turn, model: str) -> Iterator[bytes]:
    """The SSE events of `turn`, in the API's order (an `error` event replaces the rest if scripted)."""
    error = _sse("error", {"error": {"type": turn.error_type, "message": turn.error_message}})
    yield _sse("message_start", {"message": _message(turn, model, [], None)})
    deltas = 0
    for index, block in enumerate(turn.blocks):
        for event in _block_events(index, block):
            if turn.error_after is not None and deltas >= turn.error_after and b"content_block_delta" in event:
                yield error
                return
            yield event
            if b"content_block_delta" in event:
                deltas += 1
            if turn.ping and index == 0 and b"content_block_start" in event:
                yield _sse("ping", {})
    if turn.error_after is not None:
        yield error
        return
    output_tokens = max(1, sum(len("".join(b.fragments)) // 4 for b in turn.blocks if isinstance(b, Text)))
    yield _sse("message_delta", {"delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
                                 "usage": {"output_tokens": output_tokens}})
    yield _sse("message_stop", {})


def message_json(turn: Turn, model: str) -> dict[str, Any]:
    """The non-streaming response for `turn`."""
    content: list[dict[str, Any]] = []
    for block in turn.blocks:
        if isinstance(block, Text):
            content.append({"type": "text", "text": "".join(block.fragments)})
        elif isinstance(block, ToolUse):
            content.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.tool_input})
        else:
            content.append({"type": "thinking", "thinking": "".join(block.fragments), "signature": block.signature})
    return _message(turn, model, content, turn.stop_reason)


# --- Server ------------------------------------------------------------------------------------------


class FakeAnthropic(StreamLoopbackServer):
    def __init__(self, api_key: str = DEFAULT_API_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self.default_turn = Turn([Text("Hello.")])
        self._script: deque[Turn] = deque()  # deque: safe to feed from another thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *turns: Turn) -> None:
        self._script.extend(turns)

    async def wait_for_disconnect(self, timeout: float = 1.0) -> Disconnect | None:
        """The first recorded disconnect, waiting up to `timeout` (works from any event loop)."""
        deadline = time.monotonic() + timeout
        while not self.disconnects and time.monotonic() < deadline:
            await asyncio.sleep(DISCONNECT_POLL_S)
        return self.disconnects[0] if self.disconnects else None

    # HTTP.

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request = await self._read_request(reader)
        if request is None:
            return False
        method, path, headers, raw_body = request
        try:
            body: Any = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body.decode("utf-8", "replace")
        self.requests.append(RecordedRequest(method, path, headers, body, time.monotonic()))
        keep_alive = headers.get("connection", "").lower() != "close"

        if method != "POST" or not path.split("?")[0].endswith("/v1/messages"):
            await self._send_error(writer, 404, "Not found.")
        elif headers.get("authorization") != f"Bearer {self.api_key}" and headers.get("x-api-key") != self.api_key:
            await self._send_error(writer, 401, "invalid x-api-key")
        elif "anthropic-version" not in headers:
            await self._send_error(writer, 400, "anthropic-version header is required.")
        elif not isinstance(body, dict):
            await self._send_error(writer, 400, "The request body is not valid JSON.")
        else:
            turn = self._script.popleft() if self._script else self.default_turn
            model = body.get("model", "claude-haiku-5-5")
            if turn.status is not None:
                await self._send_error(writer, turn.status, REASONS.get(turn.status, "Error"))
            elif body.get("stream"):
                return await self._send_stream(reader, writer, turn, model) and keep_alive
            else:
                await self._send_json(writer, 200, message_json(turn, model))
        return keep_alive

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, payload: dict[str, Any],
                         extra_headers: str = "") -> None:
        data = json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\ncontent-type: application/json\r\n"
                     f"request-id: req_{next(_ids):06d}\r\n{extra_headers}content-length: {len(data)}\r\n\r\n"
                     .encode() + data)
        await writer.drain()

    async def _send_error(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        error = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
        await self._send_json(writer, status, error, "x-should-retry: false\r\n")

    async def _send_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, turn: Turn,
                           model: str) -> bool:
        """Stream `turn` as chunked SSE; False (and a recorded Disconnect) if the client went away."""
        sent = 0
        try:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                         b"request-id: req_%06d\r\ntransfer-encoding: chunked\r\n\r\n" % next(_ids))
            waited_for_first_token = False
            for event in stream_events(turn, model):
                if turn.first_token_delay_s and not waited_for_first_token and b"content_block_delta" in event:
                    waited_for_first_token = True
                    await sleep_unless_gone(reader, turn.first_token_delay_s)
                if turn.delay_s and sent:
                    await sleep_unless_gone(reader, turn.delay_s)
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
                sent += 1
                if client_gone(reader):
                    raise ClientGone("closed")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return True
        except (ClientGone, ConnectionError) as exc:
            self.disconnects.append(Disconnect(len(self.requests) - 1, sent, time.monotonic(), repr(exc)))
            return False
