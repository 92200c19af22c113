"""Engine events as plain JSON-able dicts, for server-sent events and the playground WebSocket."""
from __future__ import annotations

from typing import Awaitable, Callable

from voicebots.conversation import BaseEventSink, LLMError, Passage, ToolCall, ToolResult, TurnResult

Emit = Callable[[dict], Awaitable[None]]


def passage_dict(passage: Passage) -> dict:
    return {"text": passage.text, "score": round(passage.score, 5), "name": passage.document_name,
            "page": passage.page, "knowledgebase_id": passage.knowledgebase_id}


def tool_call_dict(call: ToolCall, result: ToolResult | None = None) -> dict:
    entry = {"id": call.id, "name": call.name, "input": call.input}
    if result is not None:
        entry.update(result=result.content, is_error=result.is_error, duration_ms=round(result.duration_ms, 1))
    return entry


class EmittingSink(BaseEventSink):
    """Forwards every engine event to `emit` as a {"type": ...} dict."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit

    async def on_retrieval(self, passages: list[Passage], ms: float) -> None:
        await self.emit({"type": "retrieval", "ms": round(ms, 2), "passages": [passage_dict(p) for p in passages]})

    async def on_first_token(self, ms: float) -> None:
        await self.emit({"type": "first_token", "ms": round(ms, 2)})

    async def on_text(self, text: str) -> None:
        await self.emit({"type": "text", "text": text})

    async def on_tool_started(self, call: ToolCall) -> None:
        await self.emit({"type": "tool_started", **tool_call_dict(call)})

    async def on_tool_finished(self, call: ToolCall, result: ToolResult) -> None:
        await self.emit({"type": "tool_finished", **tool_call_dict(call, result)})

    async def on_turn_done(self, result: TurnResult) -> None:
        pass  # the caller sends "done" once the turn is stored and has its session id

    async def on_error(self, error: LLMError) -> None:
        pass  # raised to the caller, which reports it once
