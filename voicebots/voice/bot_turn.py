"""One turn of the bot (a greeting, a reply, a line it says on its own), from its start until its record is
written: what it said, what it is waiting on, and whether the caller cut it off."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from voicebots.conversation.ports import Message, ToolCallRecord, TurnResult

from .ports import TurnKind
from .speech import SpokenReply
from .timeline import Timeline

# What a reply waits on: the first request (retrieval, then the model), the model's stream, a function, or
# nothing more (its text is all written).
Waiting = Literal["start", "model", "tool", "done"]


@dataclass(slots=True)
class BotTurn:
    """A bot turn from its start until its record is written."""

    index: int
    kind: TurnKind
    caller_text: str
    prior_history: list[Message]
    timeline: Timeline
    speech: SpokenReply | None = None
    task: asyncio.Task[None] | None = None
    result: TurnResult | None = None
    spoken: str = ""  # all text handed to the voice (or played from cache)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    before_tools: int = 0  # characters of `spoken` said before the first tool ran
    error: str | None = None
    sending_done: bool = False
    interrupted: bool = False
    recorded: bool = False
    waiting: Waiting = "start"
    progress_at: float = 0.0  # the model's last sign of life (request sent, text, a tool's result)
    tools_running: dict[str, str] = field(default_factory=dict)  # tool call id -> function name
    filler_at: float = 0.0  # when the bot last said a filler line in this turn
    fillers: int = 0

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()
