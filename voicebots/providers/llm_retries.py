"""The retry policy the LLM adapters share for a streamed reply.

A failed attempt is retried only while nothing of the answer was yielded yet (a caller must never hear a
sentence twice), only for failures that may pass (rate limits, overload, server errors, timeouts, lost
connections), and only while a whole new attempt still fits in the turn's time budget. The SDKs' own
retries are off so that this is the only policy.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from voicebots.conversation.ports import LLMError, LLMEvent, ThinkingDelta

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
    deadline = time.monotonic() + policy.total_budget_s
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
                     and time.monotonic() + policy.retry_delay_s < deadline)
            if not retry:
                raise error from exc
            logger.info("Retrying the model request after: %s", error.message)
        retries += 1
        await asyncio.sleep(policy.retry_delay_s)


async def retrying_call(call: Callable[[float], Awaitable[T]], *, failures: tuple[type[BaseException], ...],
                        describe: Callable[[Exception], LLMError], policy: RetryPolicy) -> T:
    """`await call(deadline)`, retried per the policy (a whole reply can always be asked for again)."""
    deadline = time.monotonic() + policy.total_budget_s
    retries = 0
    while True:
        try:
            return await call(deadline)
        except failures as exc:
            error = describe(exc)
            if not (error.retryable and retries < policy.max_retries
                    and time.monotonic() + policy.retry_delay_s < deadline):
                raise error from exc
            logger.info("Retrying the model request after: %s", error.message)
        retries += 1
        await asyncio.sleep(policy.retry_delay_s)


def sentence(text: str) -> str:
    """`text` as one sentence (vendors' error details often lack the final stop)."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."
