"""History that keeps only what the caller heard (after a barge-in, or a call ending mid-sentence)."""
from __future__ import annotations

from typing import Sequence

from voicebots.conversation.history import opening_history, with_interrupted_turn
from voicebots.conversation.ports import REFUSAL, Message, TurnResult


def history_after_greeting(heard: str) -> list[Message]:
    return opening_history(heard.strip()) if heard.strip() else []


def history_after_reply(prior: Sequence[Message], caller_text: str, spoken: str, heard: str,
                        result: TurnResult | None) -> list[Message]:
    """`spoken` is all the text sent to the voice (the model's text, as streamed), `heard` its played prefix.

    Without a finished model turn (cancelled, or failed) the exchange is rebuilt from the caller's words and the
    heard text. With one, its history is kept (tool calls and results stay: they happened) and only the final
    assistant message is cut to what was heard, or dropped if none of it was.
    """
    if result is None:
        return with_interrupted_turn(prior, caller_text, heard.strip())
    history = list(result.history)
    if heard == spoken or result.stop_reason == REFUSAL or not history:
        return history
    last = history[-1]
    if last.role != "assistant" or last.tool_calls:
        return history
    # The final message is the end of the spoken text; earlier rounds (before tool calls) come first.
    start = len(spoken.rstrip()) - len(last.text)
    heard_part = heard[start:].strip() if len(heard) > start else ""
    if heard_part:
        history[-1] = Message.assistant(heard_part)
    else:
        history.pop()
    return history
