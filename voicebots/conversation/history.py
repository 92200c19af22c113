"""Conversation history in Anthropic message format: token estimates, trimming, and small builders.

History is a list of {"role", "content"} dicts, including assistant tool_use blocks and the user
tool_result blocks that answer them. It is never mutated in place: functions return new lists.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from .ports import Message

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
CALL_CONNECTED_NOTE = "(The call has connected.)"


def text_of(message: Message) -> str:
    """The plain text of a message (its text blocks joined)."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


def _block_chars(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return len(block["text"])
    if kind == "tool_use":
        return len(block["name"]) + len(json.dumps(block.get("input", {})))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, str):
            return len(content)
        return sum(_block_chars(inner) for inner in content)
    if kind == "thinking":
        return len(block.get("thinking", ""))
    return len(json.dumps(block))


def estimate_tokens(message: Message) -> int:
    """A cheap estimate (about four characters a token) that is good enough for a soft budget."""
    content = message["content"]
    chars = len(content) if isinstance(content, str) else sum(_block_chars(block) for block in content)
    return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS


def starts_exchange(message: Message) -> bool:
    """A user message the person wrote (not one that only carries tool results)."""
    if message["role"] != "user":
        return False
    content = message["content"]
    return isinstance(content, str) or not any(block.get("type") == "tool_result" for block in content)


def trim_to_budget(messages: Sequence[Message], token_budget: int) -> list[Message]:
    """The newest whole exchanges that fit in `token_budget`.

    Cuts only in front of a user message the person wrote, so the result never starts with an
    assistant message or an orphaned tool_result. The newest exchange is kept even when it alone is
    over budget: losing the current thread costs more than a few extra tokens.
    """
    keep_from: int | None = None
    total = 0
    for index in range(len(messages) - 1, -1, -1):
        total += estimate_tokens(messages[index])
        if starts_exchange(messages[index]):
            if total > token_budget and keep_from is not None:
                break
            keep_from = index
    return [] if keep_from is None else list(messages[keep_from:])


def append_user_text(messages: list[Message], text: str) -> None:
    """Add the person's words, merging into a trailing user message (e.g. after a turn that produced no
    assistant text) so roles keep alternating. The trailing message is replaced, not mutated."""
    if messages and messages[-1]["role"] == "user":
        previous = messages[-1]["content"]
        blocks = [{"type": "text", "text": previous}] if isinstance(previous, str) else list(previous)
        messages[-1] = {"role": "user", "content": [*blocks, {"type": "text", "text": text}]}
    else:
        messages.append({"role": "user", "content": text})


def opening_history(welcome_message: str) -> list[Message]:
    """History for a call where the bot spoke first: history must start with a user message."""
    return [
        {"role": "user", "content": CALL_CONNECTED_NOTE},
        {"role": "assistant", "content": welcome_message},
    ]


def with_interrupted_turn(history: Sequence[Message], user_text: str, spoken_text: str) -> list[Message]:
    """History after a turn cancelled by barge-in: keep only what the caller actually heard."""
    messages = list(history)
    append_user_text(messages, user_text)
    if spoken_text.strip():
        messages.append({"role": "assistant", "content": spoken_text})
    return messages
