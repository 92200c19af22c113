"""The engine's ports: the small interfaces it talks through, and the plain values they carry.

Everything here is Django-free and vendor-free: messages, tools, tool calls, stream events and usage are
the project's own types, and each LLM adapter (`voicebots.providers.anthropic_llm`, `.openai_llm`)
translates them to its vendor's format. So the chat API, the browser playground and phone calls all drive
the same engine on any model, and tests can plug in stubs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal, Mapping, Protocol, Sequence, Union

# Why a model stopped, in the project's words (adapters map their vendor's reasons onto these).
END_TURN = "end_turn"
TOOL_USE = "tool_use"
MAX_TOKENS = "max_tokens"
REFUSAL = "refusal"
PAUSE_TURN = "pause_turn"  # the model wants to go on in a second request (Anthropic's long server tools)

# Token counts of a request: input_tokens (not read from a cache), output_tokens, cache_read_input_tokens,
# cache_creation_input_tokens. A vendor without one of them leaves it out.
Usage = dict[str, int]


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved knowledge excerpt."""

    text: str
    score: float
    document_name: str
    page: int | None
    knowledgebase_id: str


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call; `input_schema` is the JSON Schema of its input object."""

    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    content: str
    is_error: bool = False
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """A tool call of a turn with its outcome."""

    call: ToolCall
    result: ToolResult


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A model's reasoning (thinking) kept in a tool round, because its vendor wants it sent back unchanged.

    `vendor` names the adapter that wrote it; another adapter leaves it out. `data` is that vendor's own
    fields (a signature, a redacted payload) and is opaque to the engine.
    """

    vendor: str
    text: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation.

    A user message holds what the person said (`text`) and, after a tool round, the results of the tools
    the assistant called (`tool_results`, which come first when sent). An assistant message holds its
    text, the tools it called and any reasoning its vendor needs back. Build them with `Message.user(...)`
    and `Message.assistant(...)`; store them with `conversation.history.history_to_json`.
    """

    role: Literal["user", "assistant"]
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    reasoning: tuple[Reasoning, ...] = ()

    @classmethod
    def user(cls, text: str = "", *, tool_results: Sequence[ToolResult] = ()) -> Message:
        return cls("user", text, tool_results=tuple(tool_results))

    @classmethod
    def assistant(cls, text: str = "", *, tool_calls: Sequence[ToolCall] = (),
                  reasoning: Sequence[Reasoning] = ()) -> Message:
        return cls("assistant", text, tool_calls=tuple(tool_calls), reasoning=tuple(reasoning))


@dataclass(frozen=True, slots=True)
class SystemPrompt:
    """The system prompt in two parts: `stable` is the same on every turn of a conversation (the bot's
    prompt: adapters mark it for prompt caching), `per_turn` changes (knowledge found, call context)."""

    stable: str
    per_turn: str = ""

    @property
    def text(self) -> str:
        return f"{self.stable}\n\n{self.per_turn}" if self.per_turn else self.stable


# --- LLM stream events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolUseRequested:
    """A complete tool call (its input already parsed)."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MessageDone:
    """The end of one model response: why it stopped, its usage, and the assistant message as received
    (text, tool calls and any reasoning to send back), ready to be appended for a tool round."""

    stop_reason: str
    usage: Usage
    message: Message


LLMEvent = Union[TextDelta, ThinkingDelta, ToolUseRequested, MessageDone]


@dataclass(frozen=True, slots=True)
class LLMRequest:
    model: str
    system: SystemPrompt
    messages: Sequence[Message]
    tools: Sequence[ToolSpec]
    max_tokens: int
    thinking: bool = False
    allow_tools: bool = True  # False: the model must answer in text (tools stay listed, for context)


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole (non-streamed) reply."""

    text: str
    stop_reason: str
    usage: Usage


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
    usage: Usage = field(default_factory=dict)


# --- Ports -------------------------------------------------------------------------------------------


class Retriever(Protocol):
    async def retrieve(self, query: str, *, bot_id: str) -> list[Passage]: ...


class ToolRunner(Protocol):
    async def run(self, call: ToolCall) -> ToolResult: ...


class LLM(Protocol):
    """A language model. Both methods raise LLMError, whose message can be shown or spoken.

    `stream(request)` is an async generator of LLMEvents ending with one MessageDone: text as it is
    written, each tool call once its input is complete. Closing it (aclose, or cancelling its consumer)
    must close the underlying connection at once: that is how a barge-in stops the model.

    `complete(model=, system=, messages=, max_tokens=)` asks for one whole reply without tools and returns
    a Completion (text, stop_reason, usage): for work after a conversation, such as a call's analysis,
    on whichever provider the bot uses. `system` is a plain string; `messages` end with a user message.
    """

    def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]: ...

    async def complete(self, *, model: str, system: str, messages: Sequence[Message],
                       max_tokens: int) -> Completion: ...


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
