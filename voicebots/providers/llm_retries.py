"""The retry policy, time limits and error sentences the LLM adapters share.

A failed attempt is retried only while nothing of the answer was yielded yet (a caller must never hear a
sentence twice), only for failures that may pass (rate limits, overload, server errors, timeouts, lost
connections), and only while a whole new attempt still fits in the turn's time budget. The SDKs' own
retries are off so that this is the only policy.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import dataclass
from types import ModuleType
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar

import httpx2

from voicebots.conversation.ports import (
    Completion,
    LLMError,
    LLMEvent,
    LLMRequest,
    Message,
    SystemPrompt,
    ThinkingDelta,
)
from voicebots.core import clock

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    total_budget_s: float = 15.0
    max_retries: int = 1
    retry_delay_s: float = 0.5


async def retrying_stream(attempt: Callable[[float], AsyncIterator[LLMEvent]], *,
                          failures: tuple[type[BaseException], ...], describe: Callable[[Exception], LLMError],
                          policy: RetryPolicy) -> AsyncIterator[LLMEvent]:
    """The events of `attempt(deadline)`, retried per the policy. `failures` are the exceptions `describe`
    turns into an LLMError; the final one is raised as that LLMError."""
    deadline = clock.now() + policy.total_budget_s
    retries = 0
    while True:
        started_answering = False
        try:
            # aclosing: if our consumer stops at `yield`, the attempt (and its connection) closes now.
            async with aclosing(attempt(deadline)) as events:
                async for event in events:
                    if not isinstance(event, ThinkingDelta):
                        started_answering = True
                    yield event
            return
        except failures as exc:
            error = describe(exc)
            retry = (error.retryable and not started_answering and retries < policy.max_retries
                     and clock.now() + policy.retry_delay_s < deadline)
            if not retry:
                raise error from exc
            logger.info("Retrying the model request after: %s", error.message)
        retries += 1
        await asyncio.sleep(policy.retry_delay_s)


async def retrying_call(call: Callable[[float], Awaitable[T]], *, failures: tuple[type[BaseException], ...],
                        describe: Callable[[Exception], LLMError], policy: RetryPolicy) -> T:
    """`await call(deadline)`, retried per the policy (a whole reply can always be asked for again)."""
    deadline = clock.now() + policy.total_budget_s
    retries = 0
    while True:
        try:
            return await call(deadline)
        except failures as exc:
            error = describe(exc)
            if not (error.retryable and retries < policy.max_retries
                    and clock.now() + policy.retry_delay_s < deadline):
                raise error from exc
            logger.info("Retrying the model request after: %s", error.message)
        retries += 1
        await asyncio.sleep(policy.retry_delay_s)


def sentence(text: str) -> str:
    """`text` as one sentence (vendors' error details often lack the final stop)."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


class RetryingCalls:
    """One adapter's calls to its vendor: a streamed attempt waits up to `timeout_s`, a whole reply up to
    `complete_timeout_s`, each cut to what is left of the policy's budget; failures of `failures` are
    described by `describe` and retried per the policy."""

    def __init__(self, *, failures: tuple[type[BaseException], ...], describe: Callable[[Exception], LLMError],
                 timeout_s: float, connect_timeout_s: float, total_budget_s: float, max_retries: int,
                 retry_delay_s: float, complete_timeout_s: float) -> None:
        self._failures = failures
        self._describe = describe
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._complete_timeout_s = complete_timeout_s
        self._policy = RetryPolicy(total_budget_s, max_retries, retry_delay_s)
        self._complete_policy = RetryPolicy(complete_timeout_s * (max_retries + 1), max_retries, retry_delay_s)
        self.client_timeout = httpx2.Timeout(timeout_s, connect=connect_timeout_s)

    def stream(self, attempt: Callable[[httpx2.Timeout], AsyncIterator[LLMEvent]]) -> AsyncIterator[LLMEvent]:
        return retrying_stream(lambda deadline: attempt(self._timeout(self._timeout_s, deadline)),
                               failures=self._failures, describe=self._describe, policy=self._policy)

    async def call(self, call: Callable[[httpx2.Timeout], Awaitable[T]]) -> T:
        return await retrying_call(lambda deadline: call(self._timeout(self._complete_timeout_s, deadline)),
                                   failures=self._failures, describe=self._describe, policy=self._complete_policy)

    def _timeout(self, limit_s: float, deadline: float) -> httpx2.Timeout:
        remaining = max(deadline - clock.now(), 0.1)
        return httpx2.Timeout(min(limit_s, remaining), connect=min(self._connect_timeout_s, remaining))


class RetryingLLM:
    """The LLM port's methods over a vendor's client, retried by `_calls`. An adapter sets `_calls` and
    `_client` and writes one streamed try (`_attempt`) and one whole reply (`_complete_once`)."""

    _calls: RetryingCalls
    _client: Any

    async def aclose(self) -> None:
        await self._client.close()

    def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        return self._calls.stream(lambda timeout: self._attempt(request, timeout))

    async def complete(self, *, model: str, system: str, messages: Sequence[Message],
                       max_tokens: int) -> Completion:
        request = LLMRequest(model=model, system=SystemPrompt(system), messages=messages, tools=(),
                             max_tokens=max_tokens)
        return await self._calls.call(lambda timeout: self._complete_once(request, timeout))

    def _attempt(self, request: LLMRequest, timeout: httpx2.Timeout) -> AsyncIterator[LLMEvent]:
        raise NotImplementedError

    async def _complete_once(self, request: LLMRequest, timeout: httpx2.Timeout) -> Completion:
        raise NotImplementedError


def describe_transport_failure(error: Exception, sdk: ModuleType) -> LLMError | None:
    """The failures before any answer, alike in both vendor SDKs (`sdk`: the `openai` or `anthropic` module,
    whose error classes share names); None for any other error. The SDK wraps failures before the response;
    once streaming, transport errors arrive unwrapped."""
    if isinstance(error, (sdk.APITimeoutError, httpx2.TimeoutException)):
        return LLMError("The language model did not answer in time.", retryable=True)
    if isinstance(error, httpx2.TransportError):
        return LLMError("The connection to the language model was lost.", retryable=True)
    if isinstance(error, sdk.APIConnectionError):
        return LLMError("The language model could not be reached.", retryable=True)
    return None


def describe_status_failure(error: Exception, sdk: ModuleType, detail: str) -> LLMError:
    """An HTTP error answer (`error` is the SDK's APIStatusError), in the sentences both adapters use."""
    status = error.status_code  # type: ignore[attr-defined]
    if isinstance(error, sdk.AuthenticationError):
        return LLMError("The language model rejected the API key.", status=status)
    if isinstance(error, sdk.RateLimitError):
        return LLMError("The language model is rate limited right now.", status=status, retryable=True)
    if isinstance(error, sdk.InternalServerError):
        return LLMError("The language model had a server error.", status=status, retryable=True)
    if isinstance(error, sdk.BadRequestError):
        return rejected(detail, status)
    return LLMError(f"The language model returned an error (HTTP {status}).", status=status)


def rejected(detail: str, status: int) -> LLMError:
    return LLMError(sentence(f"The language model rejected the request: {detail}" if detail
                             else "The language model rejected the request"), status=status)
