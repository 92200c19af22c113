"""Runs one user turn: retrieve knowledge, stream the model's reply, run the tools it asks for, and
return the reply with a history that stays valid for the next turn."""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from typing import Sequence

from .config import BotConfig
from .history import append_user_text, trim_to_budget
from .ports import (
    LLM,
    PAUSE_TURN,
    REFUSAL,
    TOOL_USE,
    EventSink,
    LLMError,
    LLMRequest,
    Message,
    MessageDone,
    Passage,
    Retriever,
    SystemPrompt,
    TextDelta,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    ToolRunner,
    ToolUseRequested,
    TurnResult,
    Usage,
)
from .prompt import retrieval_query, system_prompt

logger = logging.getLogger(__name__)

REFUSAL_FALLBACK = "I'm sorry, I can't help with that."
TOOL_LIMIT_FALLBACK = "I'm sorry, I couldn't finish that request."
TOOLS_EXHAUSTED = "No more tool calls are possible in this turn. Answer with what you already know."
TOOL_UNAVAILABLE = "This tool is not available."
TOOL_CRASHED = "The tool failed unexpectedly."
TOOL_LIMIT = "tool_limit"  # the engine's own stop reason: the model kept asking for tools
MAX_PAUSE_CONTINUATIONS = 3


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class _Turn:
    """The mutable state of one running turn, and the text path to the sink."""

    __slots__ = ("started", "sink", "text_parts", "round_text_parts", "first_token_ms",
                 "llm_request_sent_ms", "tools_ms", "usage")

    def __init__(self, sink: EventSink) -> None:
        self.started = time.perf_counter()
        self.sink = sink
        self.text_parts: list[str] = []
        self.round_text_parts: list[str] = []
        self.first_token_ms: float | None = None
        self.llm_request_sent_ms: float | None = None
        self.tools_ms = 0.0
        self.usage: Usage = {}

    async def add_text(self, text: str) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = _ms_since(self.started)
            await self.sink.on_first_token(self.first_token_ms)
        if not self.round_text_parts and self.text_parts and _needs_space(self.text_parts[-1], text):
            text = " " + text
        self.text_parts.append(text)
        self.round_text_parts.append(text)
        await self.sink.on_text(text)

    def add_usage(self, usage: Usage) -> None:
        for key, value in usage.items():
            self.usage[key] = self.usage.get(key, 0) + value


def _has_content(message: Message) -> bool:
    return bool(message.text or message.tool_calls or message.reasoning)


def _needs_space(previous: str, following: str) -> bool:
    """Rounds of one turn ("Let me check." -> tool -> "It's booked.") are joined by a space."""
    return not previous[-1].isspace() and not following[0].isspace()


class ConversationEngine:
    """Drives turns through the LLM, Retriever and ToolRunner ports.

    Cheap to build; build one per conversation when the tool runner carries per-call details.
    Cancelling the task running `run_turn` closes the model stream (barge-in).
    """

    def __init__(self, llm: LLM, *, retriever: Retriever | None = None, tool_runner: ToolRunner | None = None,
                 retrieval_timeout_s: float = 2.0) -> None:
        self._llm = llm
        self._retriever = retriever
        self._tool_runner = tool_runner
        self._retrieval_timeout_s = retrieval_timeout_s

    async def run_turn(self, config: BotConfig, history: Sequence[Message], user_text: str,
                       sink: EventSink) -> TurnResult:
        """Answer `user_text`. Raises LLMError (after telling the sink) when the model cannot answer;
        `history` itself is never modified."""
        turn = _Turn(sink)
        try:
            return await self._run(config, history, user_text, turn)
        except LLMError as error:
            await sink.on_error(error)
            raise

    async def _run(self, config: BotConfig, history: Sequence[Message], user_text: str, turn: _Turn) -> TurnResult:
        passages, retrieval_ms = await self._retrieve(config, history, user_text)
        await turn.sink.on_retrieval(passages, retrieval_ms)
        prior = trim_to_budget(history, config.history_token_budget)
        messages = list(prior)
        append_user_text(messages, user_text)
        records: list[ToolCallRecord] = []
        stop_reason = await self._converse(config, system_prompt(config, passages), messages, records, turn)

        if stop_reason == REFUSAL:
            await turn.add_text(REFUSAL_FALLBACK)
            # A refused exchange must leave the context, or the next turn is likely refused again.
            messages = prior
        else:
            if stop_reason == TOOL_LIMIT and not turn.round_text_parts:
                await turn.add_text(TOOL_LIMIT_FALLBACK)
            reply = "".join(turn.round_text_parts).strip()
            if reply:
                messages.append(Message.assistant(reply))

        result = TurnResult(
            text="".join(turn.text_parts).strip(),
            stop_reason=stop_reason,
            tool_calls=records,
            passages=passages,
            timings={
                "retrieval_ms": retrieval_ms,
                "llm_request_sent_ms": turn.llm_request_sent_ms,
                "first_token_ms": turn.first_token_ms,
                "tools_ms": turn.tools_ms,
                "total_ms": _ms_since(turn.started),
            },
            history=messages,
            usage=turn.usage,
        )
        await turn.sink.on_turn_done(result)
        return result

    async def _retrieve(self, config: BotConfig, history: Sequence[Message], user_text: str) -> tuple[list[Passage], float]:
        if self._retriever is None:
            return [], 0.0
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._retrieval_timeout_s):
                passages = await self._retriever.retrieve(retrieval_query(history, user_text), bot_id=config.bot_id)
        except Exception:  # knowledge is a bonus: answer without it rather than fail the turn
            logger.warning("Retrieval failed for bot %s", config.bot_id, exc_info=True)
            passages = []
        return passages, _ms_since(started)

    async def _converse(self, config: BotConfig, system: SystemPrompt, messages: list[Message],
                        records: list[ToolCallRecord], turn: _Turn) -> str:
        """Stream replies and run tool rounds until the model ends its turn; returns the stop reason.
        Tool rounds and pause continuations are appended to `messages`; the final reply is not."""
        tools_exhausted = False
        tool_rounds = pauses = 0
        while True:
            request = LLMRequest(model=config.model, system=system, messages=messages, tools=config.tools,
                                 max_tokens=config.max_tokens, thinking=config.thinking_enabled,
                                 allow_tools=not tools_exhausted)
            done, calls = await self._stream_reply(request, turn)
            if done.stop_reason == TOOL_USE and calls:
                if tools_exhausted:  # told not to use tools, and did anyway
                    return TOOL_LIMIT
                messages.append(done.message)
                if tool_rounds < config.max_tool_rounds:
                    tool_rounds += 1
                    results = await self._run_tools(calls, records, turn)
                else:
                    results = [ToolResult(call.id, TOOLS_EXHAUSTED, is_error=True) for call in calls]
                    tools_exhausted = True
                messages.append(Message.user(tool_results=results))
            elif done.stop_reason == PAUSE_TURN and _has_content(done.message) and pauses < MAX_PAUSE_CONTINUATIONS:
                pauses += 1
                messages.append(done.message)
            else:
                return done.stop_reason

    async def _stream_reply(self, request: LLMRequest, turn: _Turn) -> tuple[MessageDone, list[ToolCall]]:
        turn.round_text_parts = []
        if turn.llm_request_sent_ms is None:
            turn.llm_request_sent_ms = _ms_since(turn.started)
        calls: list[ToolCall] = []
        done: MessageDone | None = None
        # aclosing: a cancelled turn closes the stream (and its connection) right away, not at GC time.
        async with aclosing(self._llm.stream(request)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    if event.text:
                        await turn.add_text(event.text)
                elif isinstance(event, ToolUseRequested):
                    calls.append(ToolCall(event.id, event.name, event.input))
                elif isinstance(event, MessageDone):
                    done = event
        if done is None:
            raise LLMError("The language model's reply ended unexpectedly.")
        turn.add_usage(done.usage)
        return done, calls

    async def _run_tools(self, calls: list[ToolCall], records: list[ToolCallRecord], turn: _Turn) -> list[ToolResult]:
        started = time.perf_counter()
        results = await asyncio.gather(*(self._run_tool(call, turn.sink) for call in calls))
        turn.tools_ms += _ms_since(started)
        records.extend(ToolCallRecord(call, result) for call, result in zip(calls, results))
        return list(results)

    async def _run_tool(self, call: ToolCall, sink: EventSink) -> ToolResult:
        await sink.on_tool_started(call)
        started = time.perf_counter()
        if self._tool_runner is None:
            result = ToolResult(call.id, TOOL_UNAVAILABLE, is_error=True)
        else:
            try:
                result = await self._tool_runner.run(call)
            except Exception:  # a broken tool becomes a result the model can talk about
                logger.exception("Tool %s failed", call.name)
                result = ToolResult(call.id, TOOL_CRASHED, is_error=True, duration_ms=_ms_since(started))
        await sink.on_tool_finished(call, result)
        return result
