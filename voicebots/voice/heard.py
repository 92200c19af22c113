"""History that keeps only what the caller heard (after a barge-in, or a call ending mid-sentence)."""
from __future__ import annotations

from typing import Sequence

from voicebots.conversation.history import append_user_text, opening_history, with_interrupted_turn
from voicebots.conversation.ports import REFUSAL, Message, ToolCallRecord, TurnResult


def history_after_greeting(heard: str) -> list[Message]:
    return opening_history(heard.strip()) if heard.strip() else []


def history_after_reply(prior: Sequence[Message], caller_text: str, spoken: str, heard: str,
                        result: TurnResult | None, tool_calls: Sequence[ToolCallRecord] = (),
                        before_tools: int = 0) -> list[Message]:
    """`spoken` is all the text sent to the voice (the model's text, as streamed), `heard` its played prefix.

    Without a finished model turn (cancelled, or failed) the exchange is rebuilt from the caller's words, the
    tools that ran (`tool_calls`: they happened) and the heard text. With one, its history is kept and only the
    final assistant message is cut to what was heard, or dropped if none of it was.
    """
    if result is None:
        if tool_calls:
            return history_with_tool_rounds(prior, caller_text, heard[:before_tools].strip(), tool_calls,
                                            heard[before_tools:].strip())
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


def history_with_tool_rounds(prior: Sequence[Message], caller_text: str, said_before: str,
                             tool_calls: Sequence[ToolCallRecord], said_after: str = "") -> list[Message]:
    """The exchange of a reply that ran tools but did not finish: what the bot said before them, the calls and
    their results (in one round), and what it said after them."""
    messages = list(prior)
    append_user_text(messages, caller_text)
    messages.append(Message.assistant(said_before, tool_calls=[record.call for record in tool_calls]))
    messages.append(Message.user(tool_results=[record.result for record in tool_calls]))
    if said_after:
        messages.append(Message.assistant(said_after))
    return messages
