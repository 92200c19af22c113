"""The engine's LLM port on Anthropic's Messages API (the only module that imports the `anthropic` SDK).

Streams with `messages.create(stream=True)` and maps the raw events to the port's events itself: tool
input is accumulated from `input_json_delta` fragments and parsed once at `content_block_stop`, which is
cheaper than the SDK's snapshot helper that re-parses the partial JSON after every fragment.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import aclosing
from typing import Any, AsyncIterator

import anthropic
import httpcore2  # noqa: F401  (httpx2 imports it on the first client: here, at start-up, not in a first call)
import httpx2

from voicebots.conversation.ports import (
    LLMError,
    LLMEvent,
    LLMRequest,
    MessageDone,
    TextDelta,
    ThinkingDelta,
    ToolUseRequested,
)
from voicebots.core.tls import CLIENT_CONTEXT

logger = logging.getLogger(__name__)

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})
THINKING_DISABLED = {"type": "disabled"}
THINKING_ADAPTIVE = {"type": "adaptive"}


class _Block:
    """One content block being streamed, rebuilt in request format for sending back."""

    __slots__ = ("kind", "parts", "id", "name", "signature", "data", "param", "finished")

    def __init__(self, start: Any) -> None:
        self.kind: str = start.type
        self.parts: list[str] = []
        self.id: str = getattr(start, "id", "")
        self.name: str = getattr(start, "name", "")
        self.signature: str = getattr(start, "signature", "") or ""
        self.data: str = getattr(start, "data", "")  # redacted_thinking
        self.param: dict[str, Any] | None = None  # None when there is nothing valid to send back
        self.finished = False

    def finish(self) -> dict[str, Any] | None:
        if not self.finished:
            self.finished = True
            self.param = self._build()
        return self.param

    def _build(self) -> dict[str, Any] | None:
        if self.kind == "text":
            text = "".join(self.parts)
            return {"type": "text", "text": text} if text else None
        if self.kind == "tool_use":
            raw = "".join(self.parts)
            try:
                tool_input = json.loads(raw) if raw else {}
            except ValueError:  # cut short (max_tokens): an unusable call
                logger.warning("Dropping tool_use %s with unparseable input", self.name)
                return None
            return {"type": "tool_use", "id": self.id, "name": self.name, "input": tool_input}
        if self.kind == "thinking":  # sent back (thinking on) so the model can continue after tools
            return {"type": "thinking", "thinking": "".join(self.parts), "signature": self.signature}
        if self.kind == "redacted_thinking":
            return {"type": "redacted_thinking", "data": self.data}
        return None


def _usage_dict(usage: Any, into: dict[str, int]) -> None:
    for name in USAGE_FIELDS:
        value = getattr(usage, name, None)
        if value is not None:
            into[name] = value


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _describe(error: Exception) -> LLMError:
    """One sentence a caller can show or speak, with whether retrying may help."""
    # The SDK wraps failures before the response; once streaming, transport errors arrive unwrapped.
    if isinstance(error, (anthropic.APITimeoutError, httpx2.TimeoutException)):
        return LLMError("The language model did not answer in time.", retryable=True)
    if isinstance(error, httpx2.TransportError):
        return LLMError("The connection to the language model was lost.", retryable=True)
    if isinstance(error, anthropic.APIConnectionError):
        return LLMError("The language model could not be reached.", retryable=True)
    if not isinstance(error, anthropic.APIStatusError):
        return LLMError("The language model sent a reply that could not be read.")
    status = error.status_code
    if isinstance(error, anthropic.AuthenticationError):
        return LLMError("The language model rejected the API key.", status=status)
    if isinstance(error, anthropic.RateLimitError):
        return LLMError("The language model is rate limited right now.", status=status, retryable=True)
    if isinstance(error, anthropic.OverloadedError):
        return LLMError("The language model is overloaded right now.", status=status, retryable=True)
    if isinstance(error, anthropic.InternalServerError):
        return LLMError("The language model had a server error.", status=status, retryable=True)
    detail = error.api_message or error.type or ""
    if status == 200:  # an `event: error` in the middle of the stream
        return LLMError(_sentence(f"The language model stopped with an error: {detail or 'unknown'}"),
                        status=status, retryable=error.type in RETRYABLE_STREAM_ERRORS)
    if isinstance(error, anthropic.BadRequestError):
        return LLMError(_sentence(f"The language model rejected the request: {detail}" if detail
                                  else "The language model rejected the request"), status=status)
    return LLMError(f"The language model returned an error (HTTP {status}).", status=status)


class AnthropicLLM:
    """LLM port implementation. Retries a 429/5xx/timeout/connection failure at most
    `max_retries_handled_here` times, only before any text or tool call was yielded, and only while the
    whole attempt fits in `total_budget_s`. The SDK's own retries are off (max_retries=0)."""

    def __init__(self, api_key: str, base_url: str | None = None, *, timeout_s: float = 10.0,
                 connect_timeout_s: float = 3.0, total_budget_s: float = 15.0, max_retries_handled_here: int = 1,
                 retry_delay_s: float = 0.5) -> None:
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._total_budget_s = total_budget_s
        self._max_retries = max_retries_handled_here
        self._retry_delay_s = retry_delay_s
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=0,
            timeout=httpx2.Timeout(timeout_s, connect=connect_timeout_s),
            http_client=anthropic.DefaultAsyncHttpxClient(verify=CLIENT_CONTEXT),  # no TLS context of its own
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        deadline = time.monotonic() + self._total_budget_s
        attempt = 0
        while True:
            started_answering = False
            try:
                # aclosing: if our consumer stops at `yield`, the attempt (and its connection) closes now.
                async with aclosing(self._attempt(request, deadline)) as events:
                    async for event in events:
                        if not isinstance(event, ThinkingDelta):
                            started_answering = True
                        yield event
                return
            except (anthropic.APIError, httpx2.TransportError) as exc:
                error = _describe(exc)
                retry = (error.retryable and not started_answering and attempt < self._max_retries
                         and time.monotonic() + self._retry_delay_s < deadline)
                if not retry:
                    raise error from exc
                logger.info("Retrying the model request after: %s", error.message)
            attempt += 1
            await asyncio.sleep(self._retry_delay_s)

    def _params(self, request: LLMRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "system": request.system,
            "messages": request.messages,
            "thinking": THINKING_ADAPTIVE if request.thinking else THINKING_DISABLED,
        }
        if request.tools:
            params["tools"] = request.tools
        if request.tool_choice is not None:
            params["tool_choice"] = request.tool_choice
        return params

    async def _attempt(self, request: LLMRequest, deadline: float) -> AsyncIterator[LLMEvent]:
        remaining = max(deadline - time.monotonic(), 0.1)
        timeout = httpx2.Timeout(min(self._timeout_s, remaining), connect=min(self._connect_timeout_s, remaining))
        stream = await self._client.messages.create(**self._params(request), stream=True, timeout=timeout)
        blocks: dict[int, _Block] = {}
        usage: dict[str, int] = {}
        stop_reason = ""
        async with stream:  # closes the response, and so the connection, on any exit
            async for event in stream:
                kind = event.type
                if kind == "content_block_delta":
                    delta = event.delta
                    delta_kind = delta.type
                    block = blocks[event.index]
                    if delta_kind == "text_delta":
                        block.parts.append(delta.text)
                        yield TextDelta(delta.text)
                    elif delta_kind == "input_json_delta":
                        block.parts.append(delta.partial_json)
                    elif delta_kind == "thinking_delta":
                        block.parts.append(delta.thinking)
                        yield ThinkingDelta(delta.thinking)
                    elif delta_kind == "signature_delta":
                        block.signature += delta.signature
                elif kind == "content_block_start":
                    blocks[event.index] = _Block(event.content_block)
                elif kind == "content_block_stop":
                    block = blocks[event.index]
                    if (param := block.finish()) is not None and block.kind == "tool_use":
                        yield ToolUseRequested(param["id"], param["name"], param["input"])
                elif kind == "message_start":
                    _usage_dict(event.message.usage, usage)
                elif kind == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    _usage_dict(event.usage, usage)
                elif kind == "message_stop":
                    content = [param for index in sorted(blocks) if (param := blocks[index].finish()) is not None
                               and (request.thinking or not param["type"].endswith("thinking"))]
                    yield MessageDone(stop_reason or "end_turn", usage, content)
                    return
        raise LLMError("The language model's reply was cut off.", retryable=False)
