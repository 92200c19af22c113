"""The Django-free conversation engine: one user turn in, a streamed reply (with tools and knowledge) out.

Wiring: build a BotConfig, an LLM (voicebots.providers.anthropic_llm.AnthropicLLM), optionally a
Retriever and a ToolRunner (voicebots.functions.runner.FunctionToolRunner), then call
ConversationEngine.run_turn with an EventSink.
"""
from .config import BotConfig, ToolSpec, tool_spec_from_parameters
from .engine import ConversationEngine
from .history import opening_history, trim_to_budget, with_interrupted_turn
from .ports import (
    LLM,
    BaseEventSink,
    EventSink,
    LLMError,
    LLMEvent,
    LLMRequest,
    Message,
    MessageDone,
    Passage,
    Retriever,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    ToolRunner,
    ToolUseRequested,
    TurnResult,
)

__all__ = [
    "LLM", "BaseEventSink", "BotConfig", "ConversationEngine", "EventSink", "LLMError", "LLMEvent", "LLMRequest",
    "Message", "MessageDone", "Passage", "Retriever", "TextDelta", "ThinkingDelta", "ToolCall", "ToolCallRecord",
    "ToolResult", "ToolRunner", "ToolSpec", "ToolUseRequested", "TurnResult", "opening_history",
    "tool_spec_from_parameters", "trim_to_budget", "with_interrupted_turn",
]
