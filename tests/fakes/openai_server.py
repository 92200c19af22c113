"""A protocol-accurate fake of an OpenAI-compatible API on 127.0.0.1: chat completions (streamed or not,
with tool calls) and embeddings, on raw asyncio HTTP/1.1 (see `loopback`).

    async with FakeOpenAI() as fake:                  # or start_in_thread() / stop()
        fake.script(Turn([Text("Let me ", "check."), ToolUse("book", {"day": "Monday"})]))
        ... AsyncOpenAI(api_key=fake.api_key, base_url=fake.url) ...   # fake.url ends in /v1
        fake.chat_requests[0].body["messages"]

What the real service sends, and the `openai` SDK parses: `POST /v1/chat/completions` with `stream: true`
answers `data: {chat.completion.chunk}` events (the role first, text deltas, each tool call as a first delta
with its id and name followed by argument fragments, a last chunk with `finish_reason`), a usage chunk with
empty `choices` when `stream_options.include_usage` is set, then `data: [DONE]`. Errors are JSON bodies
`{"error": {"message", "type", "param", "code"}}` with the status (401 bad key, 429 rate limit, 500), and a
failure mid-stream is a `data: {"error": ...}` event. `POST /v1/embeddings` embeds a string or a list of
strings, honours `dimensions` and `encoding_format` (`float`, or `base64` as the SDK asks by default) and
answers each request after `embedding_delay_s`, like an endpoint's own time per batch.

Embeddings are word-hashing vectors: each word adds to a few dimensions picked by its hash, so texts sharing
words are near each other and a search over them finds real matches; the same text always gives the same
unit vector.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator, Union

import numpy as np

from tests.fakes.loopback import ClientGone, sleep_unless_gone
from tests.fakes.scripted_http import Event, RecordedRequest, ScriptedHTTPServer, Text

DEFAULT_API_KEY = "test-openai-key"
ERRORS = {  # status -> (type, code, message), as the service words them
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided. You can find your API key at "
                                                      "https://platform.openai.com/account/api-keys."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 20ms."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
FIXED_DIMENSIONS = frozenset({"text-embedding-ada-002"})  # models that refuse `dimensions`
DEFAULT_EMBEDDING_DIMENSIONS = 384  # of models the fake does not know (a local server's)
MAX_EMBEDDING_INPUTS = 2048
_WORD = re.compile(r"\w+")
_ids = itertools.count(1)


# --- Script ------------------------------------------------------------------------------------------


@dataclass(init=False)
class Reasoning:
    """Reasoning text streamed as `reasoning_content` deltas (as vLLM, DeepSeek and others send it)."""

    fragments: tuple[str, ...]

    def __init__(self, *fragments: str) -> None:
        self.fragments = fragments


@dataclass
class ToolUse:
    """A tool call; its JSON arguments are streamed in fragments of `fragment_size` characters."""

    name: str
    tool_input: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{next(_ids):06d}")
    fragment_size: int = 6

    def arguments(self) -> str:
        return json.dumps(self.tool_input)

    def fragments(self) -> list[str]:
        raw = self.arguments()
        return [raw[i:i + self.fragment_size] for i in range(0, len(raw), self.fragment_size)]


Part = Union[Text, Reasoning, ToolUse]


@dataclass
class Turn:
    """One scripted chat response.

    `finish_reason` defaults to `tool_calls` when the turn calls a tool, else `stop`. `status` answers with
    that HTTP error instead (`retry_after_ms` adds the header the SDK honours). `error_after` sends a
    `data: {"error": ...}` event after that many content deltas. `delay_s` sleeps between chunks;
    `first_token_delay_s` once, before the first content delta.
    """

    parts: list[Part] = field(default_factory=list)
    finish_reason: str | None = None
    delay_s: float = 0.0
    first_token_delay_s: float = 0.0
    status: int | None = None
    retry_after_ms: int | None = None
    error_after: int | None = None
    usage: dict[str, Any] = field(default_factory=lambda: {
        "prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129,
        "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}})

    @property
    def finish(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if any(isinstance(part, ToolUse) for part in self.parts) else "stop"


@dataclass
class Failure:
    """A scripted answer to the next embeddings request: an HTTP error, or a stall (no answer for `stall_s`)."""

    status: int | None = None
    stall_s: float = 0.0
    retry_after_ms: int | None = None


# --- Chat completion chunks --------------------------------------------------------------------------


def _chunk(completion_id: str, model: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "system_fingerprint": "fp_fake", "choices": choices, **extra}


def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
    return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]


def stream_chunks(turn: Turn, model: str, include_usage: bool) -> Iterator[dict[str, Any]]:
    """The chunks of `turn` in the service's order (`"usage": null` on each when usage is asked for)."""
    completion_id = f"chatcmpl-{next(_ids):08d}"
    usage_field = {"usage": None} if include_usage else {}
    yield _chunk(completion_id, model, _delta({"role": "assistant", "content": "", "refusal": None}), **usage_field)
    tool_index = 0
    for part in turn.parts:
        if isinstance(part, Text):
            for fragment in part.fragments:
                yield _chunk(completion_id, model, _delta({"content": fragment}), **usage_field)
        elif isinstance(part, Reasoning):
            for fragment in part.fragments:
                yield _chunk(completion_id, model, _delta({"reasoning_content": fragment}), **usage_field)
        else:
            yield _chunk(completion_id, model, _delta({"tool_calls": [{
                "index": tool_index, "id": part.id, "type": "function",
                "function": {"name": part.name, "arguments": ""}}]}), **usage_field)
            for fragment in part.fragments():
                yield _chunk(completion_id, model, _delta({"tool_calls": [{
                    "index": tool_index, "function": {"arguments": fragment}}]}), **usage_field)
            tool_index += 1
    yield _chunk(completion_id, model, _delta({}, turn.finish), **usage_field)
    if include_usage:
        yield _chunk(completion_id, model, [], usage=turn.usage)


def stream_events(turn: Turn, model: str, include_usage: bool) -> Iterator[Event]:
    """The `data:` events of a streamed `turn`: its chunks, or an error event in place of the content delta
    `error_after` names (sent at once, and the stream ends there without `[DONE]`)."""
    deltas = 0
    for chunk in stream_chunks(turn, model, include_usage):
        is_content = bool(chunk["choices"]) and any(
            key in chunk["choices"][0]["delta"] for key in ("content", "tool_calls", "reasoning_content")
        ) and "role" not in chunk["choices"][0]["delta"]
        if is_content and turn.error_after is not None and deltas >= turn.error_after:
            yield Event(_data({"error": {"message": "The server had an error while processing your request.",
                                         "type": "server_error", "param": None, "code": None}}), paced=False)
            return
        yield Event(_data(chunk), content=is_content)
        deltas += is_content
    yield Event(b"data: [DONE]\n\n", paced=False)


def _data(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def completion_json(turn: Turn, model: str) -> dict[str, Any]:
    """The non-streaming response for `turn`."""
    text = "".join("".join(part.fragments) for part in turn.parts if isinstance(part, Text))
    calls = [{"id": part.id, "type": "function", "function": {"name": part.name, "arguments": part.arguments()}}
             for part in turn.parts if isinstance(part, ToolUse)]
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {"id": f"chatcmpl-{next(_ids):08d}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_fake", "usage": turn.usage,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": turn.finish}]}


# --- Embeddings --------------------------------------------------------------------------------------


def hashed_embedding(text: str, dimensions: int) -> np.ndarray:
    vector = np.zeros(dimensions, dtype=np.float32)
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=12).digest()
        for offset in range(0, 12, 4):
            slot = int.from_bytes(digest[offset:offset + 4], "little")
            vector[slot % dimensions] += 1.0 if slot & 1 << 31 else -1.0
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return vector / norm


# --- Server ------------------------------------------------------------------------------------------


class FakeOpenAI(ScriptedHTTPServer[Turn]):
    request_id_header = "x-request-id"
    request_id_width = 8

    def __init__(self, api_key: str | None = DEFAULT_API_KEY, *, embedding_delay_s: float = 0.0,
                 honour_encoding_format: bool = True) -> None:
        """`api_key=None`: accept any request, like a local server started without a key.
        `honour_encoding_format=False`: always answer lists of floats, like servers that ignore the format."""
        super().__init__(default_turn=Turn([Text("Hello.")]))
        self.api_key = api_key
        self.embedding_delay_s = embedding_delay_s
        self.honour_encoding_format = honour_encoding_format
        self.embedded_inputs = 0
        self.concurrent_embeddings = 0
        self.max_concurrent_embeddings = 0
        self._embedding_failures: deque[Failure] = deque()  # deque: safe to feed from another thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path.endswith("/embeddings")]

    def fail_embeddings(self, *failures: Failure) -> None:
        self._embedding_failures.extend(failures)

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        received = await self._next_request(reader)
        if received is None:
            return False
        request, keep_alive = received
        method, path, headers, body = request.method, request.path, request.headers, request.body
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            await self._send_error(writer, 401)
        elif method != "POST" or path not in ("/v1/chat/completions", "/v1/embeddings"):
            await self._send_error(writer, 404, f"Unknown request URL: {method} {path}.", code="unknown_url")
        elif not isinstance(body, dict) or not isinstance(body.get("model"), str):
            await self._send_error(writer, 400, "We could not parse the JSON body of your request, or it has no "
                                                "model.")
        elif path == "/v1/embeddings":
            await self._serve_embeddings(reader, writer, body)
        else:
            return await self._serve_chat(reader, writer, body) and keep_alive
        return keep_alive

    # Chat completions.

    async def _serve_chat(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          body: dict[str, Any]) -> bool:
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            await self._send_error(writer, 400, "'messages' must be a non-empty array.", param="messages")
            return True
        turn = self._next_turn()
        if turn.status is not None:
            await self._send_error(writer, turn.status, retry_after_ms=turn.retry_after_ms)
            return True
        if not body.get("stream"):
            await self._send_json(writer, 200, completion_json(turn, body["model"]))
            return True
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._send_stream(reader, writer, stream_events(turn, body["model"], include_usage),
                                       content_type="text/event-stream; charset=utf-8", delay_s=turn.delay_s,
                                       first_token_delay_s=turn.first_token_delay_s)

    # Embeddings.

    async def _serve_embeddings(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                body: dict[str, Any]) -> None:
        failure = self._embedding_failures.popleft() if self._embedding_failures else None
        if failure is not None and failure.status is not None:
            await self._send_error(writer, failure.status, retry_after_ms=failure.retry_after_ms)
            return
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(text, str) and text for text in texts):
            await self._send_error(writer, 400, "'$.input' is invalid. Please check the API reference: "
                                                "https://platform.openai.com/docs/api-reference.", param="input")
            return
        if len(texts) > MAX_EMBEDDING_INPUTS:
            await self._send_error(writer, 400, f"'$.input' must have at most {MAX_EMBEDDING_INPUTS} items.",
                                   param="input")
            return
        model = body["model"]
        dimensions = body.get("dimensions")
        if dimensions is not None and model in FIXED_DIMENSIONS:
            await self._send_error(writer, 400, "This model does not support specifying dimensions.",
                                   param="dimensions")
            return
        size = dimensions or NATIVE_DIMENSIONS.get(model, DEFAULT_EMBEDDING_DIMENSIONS)
        self.concurrent_embeddings += 1
        self.max_concurrent_embeddings = max(self.max_concurrent_embeddings, self.concurrent_embeddings)
        try:
            delay = self.embedding_delay_s + (failure.stall_s if failure is not None else 0.0)
            if delay:
                await sleep_unless_gone(reader, delay)
        except ClientGone:
            return  # the client gave up (its timeout): nothing to answer
        finally:
            self.concurrent_embeddings -= 1
        as_base64 = body.get("encoding_format") == "base64" and self.honour_encoding_format
        data = []
        for index, text in enumerate(texts):
            vector = hashed_embedding(text, size)
            encoded: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode() if as_base64 else vector.tolist()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        self.embedded_inputs += len(texts)
        tokens = sum(len(_WORD.findall(text)) for text in texts)
        await self._send_json(writer, 200, {"object": "list", "data": data, "model": model,
                                            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _send_error(self, writer: asyncio.StreamWriter, status: int, message: str | None = None, *,
                          param: str | None = None, code: str | None = None,
                          retry_after_ms: int | None = None) -> None:
        kind, default_code, default_message = ERRORS.get(status, ("server_error", None, "Error."))
        error = {"message": message or default_message, "type": kind, "param": param, "code": code or default_code}
        headers = f"retry-after-ms: {retry_after_ms}\r\n" if retry_after_ms is not None else ""
        await self._send_json(writer, status, {"error": error}, headers)
