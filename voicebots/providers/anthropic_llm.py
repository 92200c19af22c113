"""The engine's LLM port on Anthropic's Messages API (the only module that imports the `anthropic` SDK).

Streams with `messages.create(stream=True)` and maps the raw events to the port's events itself: tool
input is accumulated from `input_json_delta` fragments and parsed once at `content_block_stop`, which is
cheaper than the SDK's snapshot helper that re-parses the partial JSON after every fragment. The request
itself (with prompt caching) is built by `anthropic_format`.
"""
from __future__ import annotations

import importlib
import json
import logging
from typing import Any, AsyncIterator

import anthropic
import httpx2

from voicebots.conversation.ports import (
    END_TURN,
    Completion,
    LLMError,
    LLMEvent,
    LLMRequest,
    Message,
    MessageDone,
    Reasoning,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolUseRequested,
    Usage,
)
from voicebots.core.tls import CLIENT_CONTEXT

from . import anthropic_format
from .llm_retries import RetryingCalls, RetryingLLM, describe_status_failure, describe_transport_failure, sentence

importlib.import_module("httpcore2")  # httpx2 imports it on the first client: here, at start-up, not in a first call

logger = logging.getLogger(__name__)

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
RETRYABLE_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


class _Block:
    """One content block being streamed, rebuilt as a part of the project's Message."""

    __slots__ = ("kind", "parts", "id", "name", "signature", "data", "value", "finished")

    def __init__(self, start: Any) -> None:
        self.kind: str = start.type
        self.parts: list[str] = []
        self.id: str = getattr(start, "id", "")
        self.name: str = getattr(start, "name", "")
        self.signature: str = getattr(start, "signature", "") or ""
        self.data: str = getattr(start, "data", "")  # redacted_thinking
        self.value: str | ToolCall | Reasoning | None = None  # None when there is nothing valid to keep
        self.finished = False

    def finish(self) -> str | ToolCall | Reasoning | None:
        if not self.finished:
            self.finished = True
            self.value = self._build()
        return self.value

    def _build(self) -> str | ToolCall | Reasoning | None:
        if self.kind == "text":
            return "".join(self.parts) or None
        if self.kind == "tool_use":
            raw = "".join(self.parts)
            try:
                tool_input = json.loads(raw) if raw else {}
            except ValueError:  # cut short (max_tokens): an unusable call
                logger.warning("Dropping tool_use %s with unparseable input", self.name)
                return None
            return ToolCall(self.id, self.name, tool_input)
        if self.kind == "thinking":  # sent back (thinking on) so the model can continue after tools
            return anthropic_format.thinking("".join(self.parts), self.signature)
        if self.kind == "redacted_thinking":
            return anthropic_format.redacted_thinking(self.data)
        return None


def _assistant_message(blocks: dict[int, _Block], keep_reasoning: bool) -> Message:
    texts: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[Reasoning] = []
    for index in sorted(blocks):
        value = blocks[index].finish()
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, ToolCall):
            calls.append(value)
        elif isinstance(value, Reasoning) and keep_reasoning:
            reasoning.append(value)
    return Message.assistant("".join(texts), tool_calls=calls, reasoning=reasoning)


def _usage_dict(usage: Any, into: Usage) -> None:
    for name in USAGE_FIELDS:
        value = getattr(usage, name, None)
        if value is not None:
            into[name] = value


def _describe(error: Exception) -> LLMError:
    """One sentence a caller can show or speak, with whether retrying may help."""
    if (failure := describe_transport_failure(error, anthropic)) is not None:
        return failure
    if not isinstance(error, anthropic.APIStatusError):
        return LLMError("The language model sent a reply that could not be read.")
    status = error.status_code
    if isinstance(error, anthropic.OverloadedError):  # before its base class, InternalServerError
        return LLMError("The language model is overloaded right now.", status=status, retryable=True)
    detail = error.api_message or error.type or ""
    stream_error = not isinstance(error, (anthropic.AuthenticationError, anthropic.RateLimitError,
                                          anthropic.InternalServerError))
    if status == 200 and stream_error:  # an `event: error` in the middle of the stream
        return LLMError(sentence(f"The language model stopped with an error: {detail or 'unknown'}"),
                        status=status, retryable=error.type in RETRYABLE_STREAM_ERRORS)
    return describe_status_failure(error, anthropic, detail)


class AnthropicLLM(RetryingLLM):
    """LLM port implementation. Retries a 429/5xx/timeout/connection failure at most
    `max_retries_handled_here` times, only before any text or tool call was yielded, and only while the
    whole attempt fits in `total_budget_s`. The SDK's own retries are off (max_retries=0). `complete` (work
    after a conversation, not in one) waits up to `complete_timeout_s` an attempt, retried the same way."""

    def __init__(self, api_key: str, base_url: str | None = None, *, timeout_s: float = 10.0,
                 connect_timeout_s: float = 3.0, total_budget_s: float = 15.0, max_retries_handled_here: int = 1,
                 retry_delay_s: float = 0.5, complete_timeout_s: float = 60.0) -> None:
        self._calls = RetryingCalls(
            failures=(anthropic.APIError, httpx2.TransportError), describe=_describe, timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s, total_budget_s=total_budget_s,
            max_retries=max_retries_handled_here, retry_delay_s=retry_delay_s, complete_timeout_s=complete_timeout_s)
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=self._calls.client_timeout,
            http_client=anthropic.DefaultAsyncHttpxClient(verify=CLIENT_CONTEXT),  # no TLS context of its own
        )

    async def _complete_once(self, request: LLMRequest, timeout: httpx2.Timeout) -> Completion:
        reply = await self._client.messages.create(**anthropic_format.request_params(request), timeout=timeout)
        usage: Usage = {}
        _usage_dict(reply.usage, usage)
        text = "".join(block.text for block in reply.content if block.type == "text")
        return Completion(text, reply.stop_reason or END_TURN, usage)

    async def _attempt(self, request: LLMRequest, timeout: httpx2.Timeout) -> AsyncIterator[LLMEvent]:
        stream = await self._client.messages.create(**anthropic_format.request_params(request), stream=True,
                                                    timeout=timeout)
        blocks: dict[int, _Block] = {}
        usage: Usage = {}
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
                    if isinstance(call := blocks[event.index].finish(), ToolCall):
                        yield ToolUseRequested(call.id, call.name, call.input)
                elif kind == "message_start":
                    _usage_dict(event.message.usage, usage)
                elif kind == "message_delta":
                    stop_reason = event.delta.stop_reason or stop_reason
                    _usage_dict(event.usage, usage)
                elif kind == "message_stop":
                    yield MessageDone(stop_reason or END_TURN, usage, _assistant_message(blocks, request.thinking))
                    return
        raise LLMError("The language model's reply was cut off.", retryable=False)
