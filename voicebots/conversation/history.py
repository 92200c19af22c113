"""Conversation history: token estimates, trimming, and small builders.

History is a list of Messages, including assistant tool calls and the user messages carrying their
results. It is never mutated in place: functions return new lists. `storage` turns it into JSON and back.
"""
from __future__ import annotations

import json
from typing import Sequence

from .ports import Message

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
CALL_CONNECTED_NOTE = "(The call has connected.)"


def text_of(message: Message) -> str:
    """The plain text of a message."""
    return message.text


def estimate_tokens(message: Message) -> int:
    """A cheap estimate (about four characters a token) that is good enough for a soft budget."""
    chars = len(message.text)
    for call in message.tool_calls:
        chars += len(call.name) + len(json.dumps(call.input))
    for result in message.tool_results:
        chars += len(result.content)
    for reasoning in message.reasoning:
        chars += len(reasoning.text)
    return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS


def starts_exchange(message: Message) -> bool:
    """A user message the person wrote (not one that only carries tool results)."""
    return message.role == "user" and not message.tool_results


def trim_to_budget(messages: Sequence[Message], token_budget: int) -> list[Message]:
    """The newest whole exchanges that fit in `token_budget`.

    Cuts only in front of a user message the person wrote, so the result never starts with an
    assistant message or orphaned tool results. The newest exchange is kept even when it alone is
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
    if messages and messages[-1].role == "user":
        previous = messages[-1]
        joined = f"{previous.text}\n{text}" if previous.text else text
        messages[-1] = Message.user(joined, tool_results=previous.tool_results)
    else:
        messages.append(Message.user(text))


def opening_history(welcome_message: str) -> list[Message]:
    """History for a call where the bot spoke first: history must start with a user message."""
    return [Message.user(CALL_CONNECTED_NOTE), Message.assistant(welcome_message)]


def with_interrupted_turn(history: Sequence[Message], user_text: str, spoken_text: str) -> list[Message]:
    """History after a turn cancelled by barge-in: keep only what the caller actually heard."""
    messages = list(history)
    append_user_text(messages, user_text)
    if spoken_text.strip():
        messages.append(Message.assistant(spoken_text))
    return messages
