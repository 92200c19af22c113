"""The engine's request in Anthropic's Messages format: system blocks, tools, messages and reasoning.

Prompt caching: the bot's prompt (the stable system part) and the last tool carry `cache_control`, so the
prefix tools -> prompt is read from Anthropic's cache on every turn after the first; the per-turn system
part (knowledge, context) follows it uncached.
"""
from __future__ import annotations

from typing import Any, Sequence

from voicebots.conversation.ports import LLMRequest, Message, Reasoning, SystemPrompt, ToolSpec

VENDOR = "anthropic"
EPHEMERAL_CACHE = {"type": "ephemeral"}
THINKING_DISABLED = {"type": "disabled"}
THINKING_ADAPTIVE = {"type": "adaptive"}
NO_TOOLS = {"type": "none"}
EMPTY_RESULT = "(empty)"  # the API refuses an empty tool_result next to is_error


def request_params(request: LLMRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "system": system_blocks(request.system),
        "messages": messages(request.messages),
        "thinking": THINKING_ADAPTIVE if request.thinking else THINKING_DISABLED,
    }
    if request.tools:
        params["tools"] = tools(request.tools)
        if not request.allow_tools:
            params["tool_choice"] = NO_TOOLS
    return params


def system_blocks(system: SystemPrompt) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": system.stable, "cache_control": EPHEMERAL_CACHE}]
    if system.per_turn:
        blocks.append({"type": "text", "text": system.per_turn})
    return blocks


def tools(specs: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Tool definitions; the last one carries cache_control so all of them are cached."""
    params = [{"name": spec.name, "description": spec.description, "input_schema": dict(spec.input_schema)}
              for spec in specs]
    if params:
        params[-1]["cache_control"] = EPHEMERAL_CACHE
    return params


def messages(history: Sequence[Message]) -> list[dict[str, Any]]:
    return [message_param(message) for message in history]


def message_param(message: Message) -> dict[str, Any]:
    """A plain text message keeps the short string form; others become content blocks, in the order the
    API wants: tool results first in a user message, reasoning first in an assistant one."""
    if not (message.tool_calls or message.tool_results or message.reasoning):
        return {"role": message.role, "content": message.text}
    blocks: list[dict[str, Any]] = []
    for result in message.tool_results:
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": result.call_id,
                                 "content": result.content or EMPTY_RESULT}
        if result.is_error:
            block["is_error"] = True
        blocks.append(block)
    blocks.extend(block for part in message.reasoning if (block := reasoning_block(part)) is not None)
    if message.text:
        blocks.append({"type": "text", "text": message.text})
    blocks.extend({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
                  for call in message.tool_calls)
    return {"role": message.role, "content": blocks}


def reasoning_block(part: Reasoning) -> dict[str, Any] | None:
    """Anthropic's own thinking, as it was received; another vendor's reasoning is not sent."""
    if part.vendor != VENDOR:
        return None
    if part.data.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": part.data.get("data", "")}
    return {"type": "thinking", "thinking": part.text, "signature": part.data.get("signature", "")}


def thinking(text: str, signature: str) -> Reasoning:
    return Reasoning(VENDOR, text, {"type": "thinking", "signature": signature})


def redacted_thinking(data: str) -> Reasoning:
    return Reasoning(VENDOR, "", {"type": "redacted_thinking", "data": data})
