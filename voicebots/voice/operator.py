"""Lines an operator has the bot say during a call (live control), kept in the conversation's history."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from voicebots.conversation.history import opening_history
from voicebots.conversation.ports import Message


def history_with_bot_line(history: Sequence[Message], heard: str) -> list[Message]:
    """`history` with `heard` added as the bot's words, so the model knows the caller was told it.

    Joined to a trailing assistant message (roles keep alternating); a call that had no greeting starts with
    the connected note, as history must begin with a user message.
    """
    if not history:
        return opening_history(heard)
    messages = list(history)
    last = messages[-1]
    if last.role == "assistant":
        messages[-1] = replace(last, text=f"{last.text} {heard}".strip())
    else:
        messages.append(Message.assistant(heard))
    return messages
