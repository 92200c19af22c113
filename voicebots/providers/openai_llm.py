"""The engine's LLM port on the OpenAI chat-completions API (the only module importing the `openai` SDK for
chat): OpenAI itself, or any compatible server (Groq, Together, vLLM, Ollama, llama.cpp) by its base URL.

Streams `chat.completions.create(stream=True)` with `stream_options.include_usage`, and maps the chunks to
the port's events: text deltas as they come, reasoning deltas (`reasoning_content` or `reasoning`, which
several servers add) as ThinkingDelta, and each tool call once complete, its id, name and argument fragments
gathered by `index` and parsed once at the end. The request itself is built by `openai_format`.
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any, AsyncIterator

import httpx2
import openai

from voicebots.conversation.ports import (
    Completion,
    LLMError,
    LLMEvent,
    LLMRequest,
    Message,
    MessageDone,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolUseRequested,
)
from voicebots.core.tls import CLIENT_CONTEXT

from . import openai_format
from .llm_retries import (
    RetryingCalls,
    RetryingLLM,
    describe_status_failure,
    describe_transport_failure,
    rejected,
    sentence,
)

logger = logging.getLogger(__name__)

REASONING_FIELDS = ("reasoning_content", "reasoning")
RETRYABLE_STREAM_ERRORS = frozenset({"server_error", "rate_limit_exceeded", "overloaded_error"})


class _PendingCall:
    """A tool call being streamed: its id and name come first, its JSON arguments in fragments."""

    __slots__ = ("id", "name", "arguments")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []

    def add(self, delta: Any) -> None:
        self.id = delta.id or self.id
        function = delta.function
        if function is not None:
            self.name = function.name or self.name
            if function.arguments:
                self.arguments.append(function.arguments)

    def finish(self, index: int) -> ToolCall | None:
        raw = "".join(self.arguments).strip()
        try:
            arguments = json.loads(raw) if raw else {}
        except ValueError:  # cut short (length): an unusable call
            logger.warning("Dropping tool call %s with unparseable arguments", self.name)
            return None
        if not self.name or not isinstance(arguments, dict):
            logger.warning("Dropping a tool call without a name or with arguments that are not an object")
            return None
        # A few local servers send no id; the model only needs one to match the result to the call.
        return ToolCall(self.id or f"call_{index}_{uuid.uuid4().hex[:12]}", self.name, arguments)


def _describe(error: Exception) -> LLMError:
    """One sentence a caller can show or speak, with whether retrying may help."""
    if (failure := describe_transport_failure(error, openai)) is not None:
        return failure
    if not isinstance(error, openai.APIError):
        return LLMError("The language model sent a reply that could not be read.")
    detail = str(error.body.get("message") or "") if isinstance(error.body, dict) else ""
    if not isinstance(error, openai.APIStatusError):  # a `data: {"error": ...}` in the middle of the stream
        kind = error.type or error.code or ""
        return LLMError(sentence(f"The language model stopped with an error: {detail or 'unknown'}"),
                        retryable=kind in RETRYABLE_STREAM_ERRORS)
    status = error.status_code
    if isinstance(error, openai.NotFoundError):
        return LLMError(sentence(f"The language model was not found: {detail}" if detail
                                 else "The language model was not found"), status=status)
    if isinstance(error, openai.UnprocessableEntityError):
        return rejected(detail, status)
    return describe_status_failure(error, openai, detail)


class OpenAICompatibleLLM(RetryingLLM):
    """LLM port implementation over any OpenAI-compatible endpoint; retries as `llm_retries` says (the SDK's
    own retries are off). `complete` waits up to `complete_timeout_s` an attempt, retried the same way."""

    def __init__(self, api_key: str, base_url: str, *, timeout_s: float = 10.0, connect_timeout_s: float = 3.0,
                 total_budget_s: float = 15.0, max_retries_handled_here: int = 1, retry_delay_s: float = 0.5,
                 complete_timeout_s: float = 60.0) -> None:
        self._calls = RetryingCalls(
            failures=(openai.APIError, httpx2.TransportError), describe=_describe, timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s, total_budget_s=total_budget_s,
            max_retries=max_retries_handled_here, retry_delay_s=retry_delay_s, complete_timeout_s=complete_timeout_s)
        self._max_tokens_key = openai_format.max_tokens_field(base_url)
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, max_retries=0, timeout=self._calls.client_timeout,
            http_client=openai.DefaultAsyncHttpxClient(verify=CLIENT_CONTEXT),
        )

    async def _complete_once(self, request: LLMRequest, timeout: httpx2.Timeout) -> Completion:
        reply = await self._client.chat.completions.create(
            **openai_format.request_params(request, max_tokens_key=self._max_tokens_key), timeout=timeout)
        if not reply.choices:
            raise LLMError("The language model sent an empty reply.")
        choice = reply.choices[0]
        stop = openai_format.stop_reason(choice.finish_reason, called_tools=False,
                                         refused=bool(choice.message.refusal))
        return Completion(choice.message.content or "", stop, openai_format.usage(reply.usage))

    async def _attempt(self, request: LLMRequest, timeout: httpx2.Timeout) -> AsyncIterator[LLMEvent]:
        stream = await self._client.chat.completions.create(
            **openai_format.request_params(request, max_tokens_key=self._max_tokens_key),
            stream=True, stream_options={"include_usage": True}, timeout=timeout)
        text: list[str] = []
        calls: dict[int, _PendingCall] = {}
        finish_reason: str | None = None
        refused = False
        usage: dict[str, int] = {}
        async with stream:  # closes the response, and so the connection, on any exit
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = openai_format.usage(chunk.usage)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    yield TextDelta(delta.content)
                for field in REASONING_FIELDS:
                    if reasoning := getattr(delta, field, None):
                        yield ThinkingDelta(reasoning)
                for call_delta in delta.tool_calls or ():
                    calls.setdefault(call_delta.index, _PendingCall()).add(call_delta)
                refused = refused or bool(delta.refusal)
                finish_reason = choice.finish_reason or finish_reason
        if finish_reason is None:
            raise LLMError("The language model's reply was cut off.")
        finished = [call for index in sorted(calls) if (call := calls[index].finish(index)) is not None]
        for call in finished:
            yield ToolUseRequested(call.id, call.name, call.input)
        stop = openai_format.stop_reason(finish_reason, called_tools=bool(finished), refused=refused)
        yield MessageDone(stop, usage, Message.assistant("".join(text), tool_calls=finished))
