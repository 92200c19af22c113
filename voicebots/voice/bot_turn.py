"""One turn of the bot (a greeting, a reply, a line it says on its own), from its start until its record is
written, and the sink that feeds a reply's text to its voice."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from voicebots.conversation.ports import (
    BaseEventSink,
    Message,
    Passage,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    TurnResult,
)

from .ports import TurnKind
from .segmenter import Segmenter
from .speech import SpokenReply
from .timeline import Timeline


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
    error: str | None = None
    sending_done: bool = False
    interrupted: bool = False
    recorded: bool = False
    resumes: Resumable | None = None  # set on a turn that says the rest of a falsely interrupted reply

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


@dataclass(slots=True)
class Resumable:
    """A reply cut off by a barge-in, kept until it is clear whether the caller really took the turn."""

    turn: BotTurn
    heard: str  # of the reply, what the caller heard before the barge-in
    rest: str  # what they did not hear
    at: float


class ReplySink(BaseEventSink):
    """Feeds the model's text to the voice, segment by segment, and stamps the timeline."""

    def __init__(self, turn: BotTurn, segmenter: Segmenter, speech: SpokenReply) -> None:
        self._turn = turn
        self._segmenter = segmenter
        self._speech = speech

    async def on_retrieval(self, passages: list[Passage], ms: float) -> None:
        self._turn.timeline.mark("llm_request_sent")  # the engine sends the request right after retrieval

    async def on_first_token(self, ms: float) -> None:
        self._turn.timeline.mark("first_token")

    async def on_text(self, text: str) -> None:
        for segment in self._segmenter.feed(text):
            self._speech.say(segment)

    async def on_tool_finished(self, call: ToolCall, result: ToolResult) -> None:
        self._turn.tool_calls.append(ToolCallRecord(call, result))
