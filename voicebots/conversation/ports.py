"""The engine's ports: the small interfaces it talks through, and the plain values they carry.

Everything here is Django-free and SDK-free, so the chat API, the browser playground and phone calls can
all drive the same engine, and tests can plug in stubs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, Union

# One message in Anthropic format: {"role": "user" | "assistant", "content": str | list[block]}.
Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved knowledge excerpt."""

    text: str
    score: float
    document_name: str
    page: int | None
    knowledgebase_id: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    content: str
    is_error: bool = False
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """A tool call of a turn with its outcome."""

    call: ToolCall
    result: ToolResult


# --- LLM stream events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolUseRequested:
    """A complete tool_use block (its input already parsed)."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MessageDone:
    """The end of one model response.

    `content` is the assistant content exactly as received (text, tool_use and thinking blocks, in
    Anthropic format), so a tool round can be sent back verbatim.
    """

    stop_reason: str
    usage: dict[str, int]
    content: list[dict[str, Any]]


LLMEvent = Union[TextDelta, ThinkingDelta, ToolUseRequested, MessageDone]


@dataclass(frozen=True, slots=True)
class LLMRequest:
    model: str
    system: list[dict[str, Any]]
    messages: list[Message]
    tools: list[dict[str, Any]]
    max_tokens: int
    thinking: bool = False
    tool_choice: dict[str, Any] | None = None


class LLMError(Exception):
    """The model could not answer. `message` is one human sentence a caller may show or speak."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable


# --- Turn outcome ------------------------------------------------------------------------------------


@dataclass(slots=True)
class TurnResult:
    """What one user turn produced.

    `stop_reason` is the model's (`end_turn`, `max_tokens`, `refusal`, ...) or the engine's own
    `tool_limit`. `history` is the conversation to pass to the next turn (trimmed prior history plus
    this turn's messages). `timings` holds milliseconds: retrieval_ms, llm_request_sent_ms,
    first_token_ms (None without text), tools_ms, total_ms.
    """

    text: str
    stop_reason: str
    tool_calls: list[ToolCallRecord]
    passages: list[Passage]
    timings: dict[str, float | None]
    history: list[Message]
    usage: dict[str, int] = field(default_factory=dict)


# --- Ports -------------------------------------------------------------------------------------------


class Retriever(Protocol):
    async def retrieve(self, query: str, *, bot_id: str) -> list[Passage]: ...


class ToolRunner(Protocol):
    async def run(self, call: ToolCall) -> ToolResult: ...


class LLM(Protocol):
    def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        """An async generator of events; closing it (aclose, or cancelling its consumer) must close the
        underlying connection. Failures are raised as LLMError."""
        ...


class EventSink(Protocol):
    """What a caller observes while a turn runs. Subclass BaseEventSink to implement only a few."""

    async def on_retrieval(self, passages: list[Passage], ms: float) -> None: ...

    async def on_first_token(self, ms: float) -> None: ...

    async def on_text(self, text: str) -> None: ...

    async def on_tool_started(self, call: ToolCall) -> None: ...

    async def on_tool_finished(self, call: ToolCall, result: ToolResult) -> None: ...

    async def on_turn_done(self, result: TurnResult) -> None: ...

    async def on_error(self, error: LLMError) -> None: ...


class BaseEventSink:
    """An EventSink that ignores everything; override what you need."""

    async def on_retrieval(self, passages: list[Passage], ms: float) -> None:
        pass

    async def on_first_token(self, ms: float) -> None:
        pass

    async def on_text(self, text: str) -> None:
        pass

    async def on_tool_started(self, call: ToolCall) -> None:
        pass

    async def on_tool_finished(self, call: ToolCall, result: ToolResult) -> None:
        pass

    async def on_turn_done(self, result: TurnResult) -> None:
        pass

    async def on_error(self, error: LLMError) -> None:
        pass
