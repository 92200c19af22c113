"""A call as it happens, for someone watching (the voice playground): caller words, bot words, knowledge passages,
tool calls, finished turns with their timings, and incidents, as plain JSON-able events.

The pipeline is not told: the runtime wraps the ports it hands the pipeline (speech-to-text, voices, retriever,
tool runner, call observer) so that what passes through them is also reported. Only watched calls pay for it.
"""
from __future__ import annotations

from typing import Any, AsyncIterator, Protocol

from voicebots.chats.events import passage_dict, tool_call_dict
from voicebots.conversation.ports import Passage, Retriever, ToolCall, ToolResult, ToolRunner
from voicebots.voice.ports import (
    CallObserver,
    IncidentKind,
    SpeechEvent,
    SpeechToText,
    SpeechToTextEvent,
    SpeechTurn,
    TextToSpeech,
    Transcript,
    TurnRecord,
)


class LiveFeed(Protocol):
    def emit(self, event: dict[str, Any]) -> None:
        """One event ({"type": ...}); must not block (the browser consumer queues it in the call's outbox)."""
        ...


def turn_dict(record: TurnRecord) -> dict[str, Any]:
    timings = {name: (round(value, 1) if isinstance(value, float) else value) for name, value in record.timings.items()}
    return {"type": "turn", "index": record.index, "kind": record.kind, "caller_text": record.caller_text,
            "bot_text": record.bot_text, "interrupted": record.interrupted, "timings": timings,
            "tool_calls": [tool_call_dict(r.call, r.result) for r in record.tool_calls], "error": record.error}


class WatchedSpeechToText:
    """Reports the caller's words, interim and final."""

    def __init__(self, inner: SpeechToText, feed: LiveFeed) -> None:
        self._inner = inner
        self._feed = feed

    async def connect(self) -> None:
        await self._inner.connect()

    async def send_audio(self, audio: bytes) -> None:
        await self._inner.send_audio(audio)

    async def finalize(self) -> None:
        await self._inner.finalize()

    async def events(self) -> AsyncIterator[SpeechToTextEvent]:
        async for event in self._inner.events():
            if isinstance(event, Transcript) and event.text:
                self._feed.emit({"type": "caller", "text": event.text, "final": event.is_final})
            yield event

    async def aclose(self) -> None:
        await self._inner.aclose()


class _WatchedSpeechTurn:
    def __init__(self, inner: SpeechTurn, feed: LiveFeed) -> None:
        self._inner = inner
        self._feed = feed

    async def push(self, segment: str) -> None:
        self._feed.emit({"type": "bot", "text": segment})
        await self._inner.push(segment)

    async def finish(self) -> None:
        await self._inner.finish()

    def events(self) -> AsyncIterator[SpeechEvent]:
        return self._inner.events()

    async def cancel(self) -> None:
        await self._inner.cancel()


class WatchedVoice:
    """Reports each piece of text as it goes to the voice (what the bot is about to say)."""

    def __init__(self, inner: TextToSpeech, feed: LiveFeed) -> None:
        self._inner = inner
        self._feed = feed
        self.voice_id = inner.voice_id

    async def connect(self) -> None:
        await self._inner.connect()

    def start_turn(self) -> SpeechTurn:
        return _WatchedSpeechTurn(self._inner.start_turn(), self._feed)

    async def aclose(self) -> None:
        await self._inner.aclose()


class WatchedRetriever:
    def __init__(self, inner: Retriever, feed: LiveFeed) -> None:
        self._inner = inner
        self._feed = feed

    async def retrieve(self, query: str, *, bot_id: str) -> list[Passage]:
        passages = await self._inner.retrieve(query, bot_id=bot_id)
        self._feed.emit({"type": "passages", "passages": [passage_dict(p) for p in passages]})
        return passages


class WatchedTools:
    def __init__(self, inner: ToolRunner, feed: LiveFeed) -> None:
        self._inner = inner
        self._feed = feed

    async def run(self, call: ToolCall) -> ToolResult:
        self._feed.emit({"type": "tool_started", **tool_call_dict(call)})
        result = await self._inner.run(call)
        self._feed.emit({"type": "tool_finished", **tool_call_dict(call, result)})
        return result


class WatchedObserver:
    """Reports finished turns (as heard, with their timings) and incidents, after the record has them."""

    def __init__(self, inner: CallObserver, feed: LiveFeed) -> None:
        self._inner = inner
        self._feed = feed

    async def on_turn(self, record: TurnRecord) -> None:
        await self._inner.on_turn(record)
        self._feed.emit(turn_dict(record))

    async def on_incident(self, kind: IncidentKind, detail: str) -> None:
        await self._inner.on_incident(kind, detail)
        self._feed.emit({"type": "incident", "kind": kind, "detail": detail})

    async def on_dtmf(self, digit: str) -> None:
        await self._inner.on_dtmf(digit)
