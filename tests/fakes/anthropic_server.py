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
from dataclasses import dataclass, field
from typing import Any, Iterator, Union

from tests.fakes.scripted_http import REASONS, Event, ScriptedHTTPServer, Text

DEFAULT_API_KEY = "test-key"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


# --- Script ------------------------------------------------------------------------------------------


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


class FakeAnthropic(ScriptedHTTPServer[Turn]):
    def __init__(self, api_key: str = DEFAULT_API_KEY) -> None:
        super().__init__(default_turn=Turn([Text("Hello.")]))
        self.api_key = api_key

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        received = await self._next_request(reader)
        if received is None:
            return False
        request, keep_alive = received
        headers, body = request.headers, request.body
        if request.method != "POST" or not request.path.endswith("/v1/messages"):
            await self._send_error(writer, 404, "Not found.")
        elif headers.get("authorization") != f"Bearer {self.api_key}" and headers.get("x-api-key") != self.api_key:
            await self._send_error(writer, 401, "invalid x-api-key")
        elif "anthropic-version" not in headers:
            await self._send_error(writer, 400, "anthropic-version header is required.")
        elif not isinstance(body, dict):
            await self._send_error(writer, 400, "The request body is not valid JSON.")
        else:
            turn = self._next_turn()
            model = body.get("model", "claude-haiku-5-5")
            if turn.status is not None:
                await self._send_error(writer, turn.status, REASONS.get(turn.status, "Error"))
            elif body.get("stream"):
                events = (Event(event, content=b"content_block_delta" in event) for event in stream_events(turn, model))
                return await self._send_stream(reader, writer, events, content_type="text/event-stream",
                                               delay_s=turn.delay_s, first_token_delay_s=turn.first_token_delay_s
                                               ) and keep_alive
            else:
                await self._send_json(writer, 200, message_json(turn, model))
        return keep_alive

    async def _send_error(self, writer: asyncio.StreamWriter, status: int, message: str) -> None:
        error = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}
        await self._send_json(writer, status, error, "x-should-retry: false\r\n")
