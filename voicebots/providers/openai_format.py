"""The engine's request in the OpenAI chat-completions format, which every OpenAI-compatible server speaks.

Tool results become `tool` messages (before the person's words of the same turn), an assistant's tool calls
carry their arguments as a JSON string, and the system prompt is one `system` message with its stable part
first, so servers that cache prompt prefixes (OpenAI, vLLM, llama.cpp) reuse it from turn to turn.
Another vendor's reasoning is never sent.
"""
from __future__ import annotations

import json
from typing import Any, Sequence
from urllib.parse import urlsplit

from voicebots.conversation.ports import (
    END_TURN,
    MAX_TOKENS,
    REFUSAL,
    TOOL_USE,
    LLMRequest,
    Message,
    SystemPrompt,
    ToolSpec,
)

EMPTY_RESULT = "(empty)"
ERROR_PREFIX = "Error: "  # the format has no error flag on a tool result: the model reads it in the text
STOP_REASONS = {"stop": END_TURN, "tool_calls": TOOL_USE, "function_call": TOOL_USE, "length": MAX_TOKENS,
                "content_filter": REFUSAL}
OPENAI_HOST = "api.openai.com"


def max_tokens_field(base_url: str) -> str:
    """OpenAI's own API wants `max_completion_tokens` (its reasoning models refuse `max_tokens`); local and
    other compatible servers know `max_tokens` best."""
    return "max_completion_tokens" if urlsplit(base_url).hostname == OPENAI_HOST else "max_tokens"


def request_params(request: LLMRequest, *, max_tokens_key: str = "max_tokens") -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "messages": messages(request.system, request.messages),
        max_tokens_key: request.max_tokens,
    }
    if request.tools:
        params["tools"] = tools(request.tools)
        if not request.allow_tools:
            params["tool_choice"] = "none"
    return params


def tools(specs: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": spec.name, "description": spec.description,
                                              "parameters": dict(spec.input_schema)}} for spec in specs]


def messages(system: SystemPrompt, history: Sequence[Message]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [{"role": "system", "content": system.text}]
    for message in history:
        params.extend(message_params(message))
    return params


def message_params(message: Message) -> list[dict[str, Any]]:
    if message.role == "user":
        params: list[dict[str, Any]] = [
            {"role": "tool", "tool_call_id": result.call_id,
             "content": (ERROR_PREFIX if result.is_error else "") + (result.content or EMPTY_RESULT)}
            for result in message.tool_results]
        if message.text or not params:
            params.append({"role": "user", "content": message.text})
        return params
    param: dict[str, Any] = {"role": "assistant", "content": message.text}
    if message.tool_calls:
        param["content"] = message.text or None
        param["tool_calls"] = [{"id": call.id, "type": "function",
                                "function": {"name": call.name, "arguments": json.dumps(call.input)}}
                               for call in message.tool_calls]
    return [param]


def stop_reason(finish_reason: str | None, *, called_tools: bool, refused: bool) -> str:
    """Some servers finish with `stop` after tool calls: what was sent decides."""
    if refused:
        return REFUSAL
    if called_tools:
        return TOOL_USE
    return STOP_REASONS.get(finish_reason or "stop", END_TURN)


def usage(raw: Any) -> dict[str, int]:
    """OpenAI counts cached tokens inside `prompt_tokens`; the project's `input_tokens` are the uncached ones."""
    if raw is None:
        return {}
    details = getattr(raw, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", None) or 0) if details is not None else 0
    counts = {"input_tokens": max((raw.prompt_tokens or 0) - cached, 0), "output_tokens": raw.completion_tokens or 0}
    if cached:
        counts["cache_read_input_tokens"] = cached
    return counts
