"""The Django-free conversation engine: one user turn in, a streamed reply (with tools and knowledge) out.

Wiring: build a BotConfig, an LLM (an adapter of `voicebots.providers`, built by `voicebots.vendors`),
optionally a Retriever and a ToolRunner (voicebots.functions.runner.FunctionToolRunner), then call
ConversationEngine.run_turn with an EventSink. Histories are lists of Message; `storage` turns them into
JSON for the database and back.
"""
from .config import BotConfig, tool_spec_from_parameters
from .engine import ConversationEngine
from .history import opening_history, trim_to_budget, with_interrupted_turn
from .ports import (
    LLM,
    BaseEventSink,
    Completion,
    EventSink,
    LLMError,
    LLMEvent,
    LLMRequest,
    Message,
    MessageDone,
    Passage,
    Reasoning,
    Retriever,
    SystemPrompt,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    ToolRunner,
    ToolSpec,
    ToolUseRequested,
    TurnResult,
    Usage,
)
from .storage import history_from_json, history_to_json

__all__ = [
    "LLM", "BaseEventSink", "BotConfig", "Completion", "ConversationEngine", "EventSink", "LLMError", "LLMEvent",
    "LLMRequest", "Message", "MessageDone", "Passage", "Reasoning", "Retriever", "SystemPrompt", "TextDelta",
    "ThinkingDelta", "ToolCall", "ToolCallRecord", "ToolResult", "ToolRunner", "ToolSpec", "ToolUseRequested",
    "TurnResult", "Usage", "history_from_json", "history_to_json", "opening_history", "tool_spec_from_parameters",
    "trim_to_budget", "with_interrupted_turn",
]
