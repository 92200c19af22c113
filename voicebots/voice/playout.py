"""Audio out to the caller: 20 ms frames (of the transport's output format), a checkpoint after each spoken
segment, and what was heard.

The transport plays frames in order and acknowledges a checkpoint once everything before it has been played,
so the acknowledged segments are exactly what the caller heard. Audio is sent as soon as it exists (the
transport buffers it); a barge-in mutes the turn, which drops whatever it still tries to send, and clears
the transport's buffer.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .ports import Transport


def checkpoint_name(turn: int, segment: int) -> str:
    return f"turn{turn}-seg{segment}"


@dataclass(slots=True)
class PlayedSegment:
    turn: int
    index: int
    text: str
    played: bool = False


class Playout:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._format = transport.output_format
        self._partial_turn = -1
        self._partial = b""  # audio of the current segment not yet making up a whole frame
        self._segments: dict[str, PlayedSegment] = {}
        self._turns: dict[int, list[PlayedSegment]] = {}
        self._muted: set[int] = set()
        self._acked = asyncio.Event()

    async def play(self, turn: int, audio: bytes) -> int:
        """Send `audio` of `turn` in whole frames (the rest waits for more audio); returns frames sent."""
        if turn in self._muted:
            return 0
        if turn != self._partial_turn:
            self._partial_turn, self._partial = turn, b""
        frame_bytes = self._format.frame_bytes
        data = self._partial + audio
        whole = len(data) - len(data) % frame_bytes
        self._partial = data[whole:]
        sent = 0
        for offset in range(0, whole, frame_bytes):
            if turn in self._muted:  # interrupted while this loop was awaiting the transport
                break
            await self._transport.send_audio(data[offset:offset + frame_bytes])
            sent += 1
        return sent

    async def end_segment(self, turn: int, index: int, text: str) -> None:
        """The segment's audio is complete: send its last (padded) frame and a checkpoint."""
        if turn in self._muted:
            return
        if turn == self._partial_turn and self._partial:
            await self._transport.send_audio(self._format.pad_to_frame(self._partial))
        self._partial = b""
        segment = PlayedSegment(turn, index, text)
        name = checkpoint_name(turn, index)
        self._segments[name] = segment
        self._turns.setdefault(turn, []).append(segment)
        await self._transport.checkpoint(name)

    def on_played(self, name: str) -> PlayedSegment | None:
        """A checkpoint was acknowledged: its segment, and every earlier one of the turn, was heard."""
        segment = self._segments.get(name)
        if segment is None:
            return None
        for earlier in self._turns[segment.turn]:
            if earlier.index <= segment.index:
                earlier.played = True
        self._acked.set()
        return segment

    def heard_text(self, turn: int) -> str:
        return "".join(segment.text for segment in self._turns.get(turn, []) if segment.played)

    def is_playing(self, turn: int) -> bool:
        """A segment of `turn` was sent and not yet acknowledged as played."""
        return any(not segment.played for segment in self._turns.get(turn, []))

    async def wait_played(self, turn: int) -> None:
        """Until every segment sent for `turn` has been acknowledged as played."""
        while self.is_playing(turn):
            self._acked.clear()
            await self._acked.wait()

    async def interrupt(self, turn: int) -> None:
        """Barge-in: drop the turn's pending and future audio and clear what the transport still buffers."""
        self._muted.add(turn)
        if turn == self._partial_turn:
            self._partial = b""
        await self._transport.clear()
