"""History as JSON, for the database (a chat session's or a call's), and back.

A message is stored as `{"role", "content": "<text>"}`, plus `tool_calls` ([{"id", "name", "input"}]),
`tool_results` ([{"call_id", "content", "is_error"}]) and `reasoning` ([{"vendor", "text", "data"}]) when
it has any. A plain text message is therefore the same in this format and in Anthropic's, which histories
were stored in before; those older rows (content as a list of Anthropic blocks) are converted on read.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

from .ports import Message, Reasoning, ToolCall, ToolResult

logger = logging.getLogger(__name__)

ANTHROPIC = "anthropic"  # the vendor that wrote the reasoning blocks found in older histories


def history_to_json(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [message_to_json(message) for message in messages]


def message_to_json(message: Message) -> dict[str, Any]:
    stored: dict[str, Any] = {"role": message.role, "content": message.text}
    if message.tool_calls:
        stored["tool_calls"] = [{"id": call.id, "name": call.name, "input": call.input}
                                for call in message.tool_calls]
    if message.tool_results:
        stored["tool_results"] = [{"call_id": result.call_id, "content": result.content, "is_error": result.is_error}
                                  for result in message.tool_results]
    if message.reasoning:
        stored["reasoning"] = [{"vendor": part.vendor, "text": part.text, "data": dict(part.data)}
                               for part in message.reasoning]
    return stored


def history_from_json(stored: Any) -> list[Message]:
    """Messages from stored JSON, in this module's format or the older Anthropic one. Entries that are
    neither are skipped (and logged) rather than failing the conversation that continues them."""
    if not isinstance(stored, list):
        return []
    messages: list[Message] = []
    for entry in stored:
        try:
            messages.append(message_from_json(entry))
        except (KeyError, TypeError, ValueError, AttributeError):
            logger.warning("Skipping a stored message that cannot be read: %.200r", entry)
    return messages


def message_from_json(entry: dict[str, Any]) -> Message:
    role = entry["role"]
    if role not in ("user", "assistant"):
        raise ValueError(f"unknown role {role!r}")
    content = entry.get("content", "")
    if isinstance(content, list):
        return _from_anthropic_blocks(role, content)
    return Message(
        role, str(content),
        tool_calls=tuple(ToolCall(str(call["id"]), str(call["name"]), dict(call.get("input") or {}))
                         for call in entry.get("tool_calls", ())),
        tool_results=tuple(ToolResult(str(result["call_id"]), str(result.get("content", "")),
                                      bool(result.get("is_error", False)))
                           for result in entry.get("tool_results", ())),
        reasoning=tuple(Reasoning(str(part["vendor"]), str(part.get("text", "")), dict(part.get("data") or {}))
                        for part in entry.get("reasoning", ())),
    )


def _from_anthropic_blocks(role: str, blocks: Iterable[dict[str, Any]]) -> Message:
    texts: list[str] = []
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    reasoning: list[Reasoning] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(ToolCall(block["id"], block["name"], dict(block.get("input") or {})))
        elif kind == "tool_result":
            results.append(ToolResult(block["tool_use_id"], _tool_result_text(block.get("content", "")),
                                      bool(block.get("is_error", False))))
        elif kind == "thinking":
            reasoning.append(Reasoning(ANTHROPIC, block.get("thinking", ""),
                                       {"type": "thinking", "signature": block.get("signature", "")}))
        elif kind == "redacted_thinking":
            reasoning.append(Reasoning(ANTHROPIC, "", {"type": "redacted_thinking", "data": block.get("data", "")}))
    # Several user text blocks came from words merged into one turn; an assistant's are one reply.
    text = ("\n" if role == "user" else "").join(texts)
    return Message(role, text, tool_calls=tuple(calls), tool_results=tuple(results), reasoning=tuple(reasoning))


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))
