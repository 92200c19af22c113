"""A reply to the caller: the model's text to the voice as it is written, and the model asked again when its
stream stalls or it says nothing.

- A stream that gives no sign of life (no text, no tool call) for `llm_stall_s` after the request is cancelled
  and the model asked again, once; after tools ran, the new request carries their results (a function is never
  run twice). A stream that stalls again, or after words were already said, is given up: the session apologises.
- A reply with nothing to say (an empty or whitespace-only answer, often after a function returned nothing) is
  asked for again once, with a note that the caller heard nothing; if it still says nothing the session says a
  fallback line.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Literal, Sequence

from voicebots.conversation.config import BotConfig
from voicebots.conversation.engine import ConversationEngine
from voicebots.conversation.ports import (
    BaseEventSink,
    LLMError,
    Message,
    Passage,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    TurnResult,
)
from voicebots.core import clock

from .bot_turn import BotTurn
from .heard import history_with_tool_rounds
from .ports import IncidentKind
from .segmenter import Segmenter, SegmenterOptions
from .speech import SpokenReply

logger = logging.getLogger(__name__)

STALL_CHECK_S = 0.05
CONTINUE_NOTE = "(The caller is still waiting for your answer: go on.)"
SAY_SOMETHING_NOTE = "(The caller heard nothing from you. Answer them now, out loud, in a sentence or two.)"

Outcome = Literal["answered", "silent", "failed"]


class _Stalled(Exception):
    pass


class ReplySink(BaseEventSink):
    """Feeds the model's text to the voice, segment by segment; stamps the timeline and notes what the reply
    is waiting on (for the dead-air watch)."""

    def __init__(self, turn: BotTurn, segmenter: Segmenter, speech: SpokenReply) -> None:
        self._turn = turn
        self._segmenter = segmenter
        self._speech = speech
        self.said = False  # some of the model's text reached the voice

    async def on_retrieval(self, passages: list[Passage], ms: float) -> None:
        self._turn.timeline.mark("llm_request_sent")  # the engine sends the request right after retrieval
        self._progress()

    async def on_first_token(self, ms: float) -> None:
        self._turn.timeline.mark("first_token")

    async def on_text(self, text: str) -> None:
        self._progress()
        for segment in self._segmenter.feed(text):
            self._say(segment)

    async def on_tool_started(self, call: ToolCall) -> None:
        # The model's words before a tool call are complete: say them now, not once the tool has answered.
        if (rest := self._segmenter.flush()) is not None:
            self._say(rest)
        turn = self._turn
        if not turn.tool_calls and not turn.tools_running:
            turn.before_tools = len(self._speech.text)
        turn.tools_running[call.id] = call.name
        turn.waiting = "tool"

    async def on_tool_finished(self, call: ToolCall, result: ToolResult) -> None:
        turn = self._turn
        turn.tool_calls.append(ToolCallRecord(call, result))
        turn.tools_running.pop(call.id, None)
        if not turn.tools_running:
            self._progress()  # the next request goes out now

    async def on_turn_done(self, result: TurnResult) -> None:
        self._turn.waiting = "done"

    def flush(self) -> None:
        if (rest := self._segmenter.flush()) is not None:
            self._say(rest)

    def _say(self, segment: str) -> None:
        self._speech.say(segment)
        self.said = True

    def _progress(self) -> None:
        """The model is at work (a request went out, text came): the reply waits on it."""
        self._turn.waiting = "model"
        self._turn.progress_at = clock.now()


class Replier:
    def __init__(self, engine: ConversationEngine, config: BotConfig, *, stall_s: float | None,
                 segmenter: SegmenterOptions, incident: Callable[[IncidentKind, str], Awaitable[None]],
                 action_pending: Callable[[], bool]) -> None:
        self._engine = engine
        self._config = config
        self._stall_s = stall_s
        self._segmenter = segmenter
        self._incident = incident
        self._action_pending = action_pending  # the model asked to end or transfer the call: silence is fine

    async def run(self, turn: BotTurn, speech: SpokenReply) -> Outcome:
        """Answer `turn.caller_text` into `speech`; sets `turn.result` or `turn.error`."""
        history: Sequence[Message] = turn.prior_history
        text = turn.caller_text
        asked_again_stalled = asked_again_silent = False
        while True:
            sink = ReplySink(turn, Segmenter(self._segmenter), speech)
            turn.waiting, turn.progress_at = "start", clock.now()
            try:
                result = await self._watched(turn, history, text, sink)
            except _Stalled:
                if sink.said or asked_again_stalled:
                    sink.flush()
                    turn.error = "The language model stopped answering."
                    await self._incident("llm_stalled", f"no answer for {self._stall_s:g} s; gave up on the reply")
                    return "failed"
                asked_again_stalled = True
                await self._incident("llm_stalled", f"no answer for {self._stall_s:g} s; asked again")
                if turn.tool_calls:  # their results go along: a function must not run twice
                    history = history_with_tool_rounds(turn.prior_history, turn.caller_text,
                                                       speech.text[:turn.before_tools].strip(), turn.tool_calls)
                    text = CONTINUE_NOTE
                continue
            except LLMError as error:
                sink.flush()
                turn.error = error.message
                await self._incident("llm_error", error.message)
                return "failed"
            except Exception:  # a bug in a tool or adapter must not leave the caller in silence
                logger.exception("The reply failed")
                sink.flush()
                turn.error = "The reply failed unexpectedly."
                await self._incident("llm_error", turn.error)
                return "failed"
            sink.flush()
            turn.result = result
            if sink.said or self._action_pending():
                return "answered"
            if asked_again_silent:
                return "silent"
            asked_again_silent = True
            await self._incident("empty_reply", "the model said nothing; asked again")
            history, text = result.history, SAY_SOMETHING_NOTE

    async def _watched(self, turn: BotTurn, history: Sequence[Message], text: str, sink: ReplySink) -> TurnResult:
        """The engine's turn, cancelled when the model gives no sign of life for `stall_s`."""
        task = asyncio.create_task(self._engine.run_turn(self._config, history, text, sink))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=STALL_CHECK_S)
                if done:
                    return task.result()
                if self._stalled(turn, sink):
                    raise _Stalled
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def _stalled(self, turn: BotTurn, sink: ReplySink) -> bool:
        if self._stall_s is None or turn.waiting != "model":
            return False
        if self._config.thinking_enabled and not sink.said:
            return False  # a model that thinks first is quiet until it has thought
        return clock.now() - turn.progress_at >= self._stall_s
