"""Audio out to the caller: 20 ms frames (of the transport's output format), a checkpoint after each spoken
segment, what was heard, and where.

The transport plays frames in order at real time and acknowledges a checkpoint once everything before it has
been played, so the acknowledged segments were heard for sure. Audio is sent as soon as it exists (the
transport buffers it), and the playout keeps a clock of when each frame will play: the caller has heard a
turn's audio up to the byte playing now, which places a barge-in inside a segment, on a word.

Each turn's audio is kept as it came from the voice (`TurnAudio`), so that a turn can be held (the caller
started to speak: the transport's buffer is cleared and nothing more is sent) and later resumed from any byte,
with no new synthesis: typically from the first word the caller did not hear. A stopped turn (the caller took
the turn) drops whatever it still tries to send. Audio goes out at most `MAX_AHEAD_S` ahead of playback.
"""
from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass, field
from typing import Callable

from voicebots.core.clock import now as clock_now

from .audio import FRAME_MS, AudioFormat
from .ports import Transport
from .words import WordSpan, estimated_words, first_unheard

FRAME_S = FRAME_MS / 1000
LEVEL_MEMORY_S = 2.0  # how far back the level of the bot's own voice is kept, for telling its echo apart
# The carrier plays a little behind this clock (the network, its jitter buffer): audio that ended this recently
# may still be playing, so a hold clears it too.
CLEAR_SLACK_S = 0.3
FRAMES_PER_YIELD = 5  # as many as one message of the transport carries
# Audio is sent ahead of playback by at most this much (a long reply, a resume): the transport's queue stays
# bounded, and what the caller never hears (they interrupt) is mostly never sent.
MAX_AHEAD_S = 10.0


def checkpoint_name(turn: int, segment: int, resumed: int = 0) -> str:
    return f"turn{turn}-seg{segment}" + (f"-r{resumed}" if resumed else "")


@dataclass(slots=True)
class PlayedSegment:
    """A spoken segment of a turn: its text and its audio, bytes `start` to `end` of the turn's audio."""

    turn: int
    index: int
    text: str
    char: int  # where its text starts in the turn's text
    start: int
    end: int
    words: list[WordSpan] | None = None  # from the voice's timestamps (None: estimated when needed)
    played: bool = False


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a held turn goes on: `byte` of its audio, `char` of its text (what was heard is the text before)."""

    byte: int
    char: int


@dataclass(slots=True)
class TurnAudio:
    """Everything a turn's voice produced, in order, and how much of it went to the transport."""

    turn: int
    bytes_per_second: int
    sample_bytes: int = 1
    audio: bytearray = field(default_factory=bytearray)
    segments: list[PlayedSegment] = field(default_factory=list)
    segment_start: int = 0  # where the segment now being voiced starts
    pending_words: list[tuple[int, int, int | None]] = field(default_factory=list)  # (byte, char, end) in turn
    sent: int = 0  # bytes handed to the transport, when live
    frames: list[tuple[float, int, int]] = field(default_factory=list)  # (plays at, first byte, end byte)
    held: bool = False
    stopped: bool = False
    resuming: bool = False  # a resume is sending the kept audio: new audio waits behind it
    woken: asyncio.Event = field(default_factory=asyncio.Event)  # held or stopped: a paced send stops waiting
    resumed: int = 0  # times it was resumed after a hold (names its new checkpoints)
    heard_char: int = 0  # of the turn's text, what was heard when it was held or stopped mid-segment
    first_sent_at: float | None = None  # when its first and its latest frame went to the transport
    last_sent_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments)

    def position(self, at: float) -> int:
        """The byte of this turn's audio playing at `at` (by the clock of frames sent), i.e. heard up to."""
        index = bisect.bisect_right(self.frames, (at, float("inf"), 0)) - 1
        if index < 0:
            return self.frames[0][1] if self.frames else 0
        plays_at, first, end = self.frames[index]
        played = round((at - plays_at) * self.bytes_per_second / self.sample_bytes) * self.sample_bytes
        return min(end, first + played)


class Playout:
    def __init__(self, transport: Transport, clock: Callable[[], float] = clock_now, *,
                 playback_lag_s: float = 0.0) -> None:
        self._transport = transport
        self._format: AudioFormat = transport.output_format
        self._clock = clock
        # The carrier plays what we send a little later than we send it (its jitter buffer, the network), while
        # a clear stops it at once: when it stops, it has played what our clock says it played this long ago.
        self._playback_lag_s = playback_lag_s
        self._turns: dict[int, TurnAudio] = {}
        self._checkpoints: dict[str, PlayedSegment] = {}
        self._acked = asyncio.Event()
        self._segment_done = asyncio.Event()
        self._play_end = 0.0  # when everything sent so far will have played
        # When each frame sent plays, and its level, in time order (for telling the bot's echo apart).
        self._level_times: list[float] = []
        self._levels: list[float] = []

    def audio_of(self, turn: int) -> TurnAudio:
        if turn not in self._turns:
            self._turns[turn] = TurnAudio(turn, self._format.bytes_per_second, self._format.sample_bytes)
        return self._turns[turn]

    # --- Sending ----------------------------------------------------------------------------------------

    async def play(self, turn: int, audio: bytes) -> int:
        """Take `audio` of `turn`; send it in whole frames unless the turn is held (the rest waits for more
        audio). Returns the frames sent."""
        kept = self.audio_of(turn)
        if kept.stopped:
            return 0
        kept.audio += audio
        if kept.held or kept.resuming:
            return 0
        return await self._send_up_to(kept, len(kept.audio), pad=False)

    async def end_segment(self, turn: int, index: int, text: str) -> None:
        """The segment's audio is complete: send its last (padded) frame and a checkpoint."""
        kept = self.audio_of(turn)
        if kept.stopped:
            return
        char = sum(len(segment.text) for segment in kept.segments)
        segment = PlayedSegment(turn, index, text, char, kept.segment_start, len(kept.audio))
        pending, kept.pending_words = kept.pending_words, []
        for byte, word_char, end in pending:
            if byte >= segment.end:
                kept.pending_words.append((byte, word_char, end))
            else:
                _add_word(segment, byte, word_char, end)
        kept.segments.append(segment)
        kept.segment_start = segment.end
        self._segment_done.set()
        if not (kept.held or kept.resuming):
            await self._send_up_to(kept, segment.end, pad=True)
            await self._checkpoint(kept, segment)

    def discard_open_segment(self, turn: int) -> None:
        """A voice failed mid-segment: the segment will be said again from its start by the next voice."""
        kept = self.audio_of(turn)
        kept.segment_start = len(kept.audio)
        kept.pending_words.clear()

    def mark_word(self, turn: int, byte: int, char: int, end: int | None = None) -> None:
        """The voice says where a word lies: bytes from `byte` (to `end`) of the turn's audio, `char` of its text."""
        kept = self.audio_of(turn)
        for segment in kept.segments:  # timestamps may come after their segment's audio
            if segment.start <= byte < segment.end:
                _add_word(segment, byte, char, end)
                return
        kept.pending_words.append((byte, char, end))

    async def _send_up_to(self, kept: TurnAudio, limit: int, *, pad: bool) -> int:
        sent, frame_bytes = 0, self._format.frame_bytes
        while kept.sent < limit and not (kept.held or kept.stopped):
            if (ahead := self._play_end - self._clock()) > MAX_AHEAD_S:
                kept.woken.clear()
                try:  # a second's worth at a time; a hold ends the wait (the voice's audio must keep coming)
                    await asyncio.wait_for(kept.woken.wait(), ahead - MAX_AHEAD_S + 1.0)
                except TimeoutError:
                    pass
                continue
            end = min(kept.sent + frame_bytes, limit)
            if end - kept.sent < frame_bytes and not pad:
                break
            frame = bytes(kept.audio[kept.sent:end])
            self._schedule(kept, kept.sent, end, frame)
            kept.sent = end
            await self._transport.send_audio(self._format.pad_to_frame(frame) if len(frame) < frame_bytes else frame)
            kept.last_sent_at = self._clock()
            if kept.first_sent_at is None:
                kept.first_sent_at = kept.last_sent_at
            sent += 1
            if sent % FRAMES_PER_YIELD == 0:  # a long stretch (a resume, a cached greeting): let the transport
                await asyncio.sleep(0)  # send as we go, rather than overflow its queue
        return sent

    def _schedule(self, kept: TurnAudio, first: int, end: int, frame: bytes) -> None:
        """Note when this frame will play: after everything queued before it, and not before now."""
        now = self._clock()
        plays_at = max(now, self._play_end)
        self._play_end = plays_at + FRAME_S
        kept.frames.append((plays_at, first, end))
        self._level_times.append(plays_at)
        self._levels.append(self._format.rms(frame))
        if self._level_times[0] < now - 2 * LEVEL_MEMORY_S:  # forget the old ones, now and then
            keep = bisect.bisect_left(self._level_times, now - LEVEL_MEMORY_S)
            del self._level_times[:keep], self._levels[:keep]

    async def _checkpoint(self, kept: TurnAudio, segment: PlayedSegment) -> None:
        name = checkpoint_name(kept.turn, segment.index, kept.resumed)
        self._checkpoints[name] = segment
        await self._transport.checkpoint(name)

    # --- What was heard -----------------------------------------------------------------------------------

    def on_played(self, name: str) -> PlayedSegment | None:
        """A checkpoint was acknowledged: its segment, and every earlier one of the turn, was heard."""
        segment = self._checkpoints.get(name)
        if segment is None:
            return None
        for earlier in self._turns[segment.turn].segments:
            if earlier.index <= segment.index:
                earlier.played = True
        self._acked.set()
        return segment

    def heard_text(self, turn: int) -> str:
        """What the caller heard of `turn`: its acknowledged segments, or more when it was cut off mid-segment."""
        kept = self._turns.get(turn)
        if kept is None:
            return ""
        acked = "".join(segment.text for segment in kept.segments if segment.played)
        return acked if len(acked) >= kept.heard_char else kept.text[:kept.heard_char]

    def is_playing(self, turn: int) -> bool:
        """Audio of `turn` was sent and not yet acknowledged as played (or is held, to be sent)."""
        kept = self._turns.get(turn)
        if kept is None or kept.stopped:
            return False
        return kept.held or any(not segment.played for segment in kept.segments)

    def audible(self, at: float | None = None) -> bool:
        """The caller is hearing the bot at `at` (now): audio sent earlier is still playing."""
        return self._play_end > (self._clock() if at is None else at)

    @property
    def play_end(self) -> float:
        """When the last audio sent will have played (the caller hears silence from then on)."""
        return self._play_end

    def level(self, since: float, until: float) -> float:
        """The loudest frame of the bot's voice playing between `since` and `until` (0 if none)."""
        first = bisect.bisect_left(self._level_times, since - FRAME_S)
        last = bisect.bisect_right(self._level_times, until)
        return max(self._levels[first:last], default=0.0)

    async def wait_played(self, turn: int) -> None:
        """Until every segment sent for `turn` has been acknowledged as played."""
        while self.is_playing(turn):
            self._acked.clear()
            await self._acked.wait()

    # --- Barge-in ---------------------------------------------------------------------------------------

    async def hold(self, turn: int) -> int:
        """Stop the caller hearing `turn` now and send nothing more of it until `resume`; returns the byte of its
        audio heard up to."""
        kept = self.audio_of(turn)
        now = self._clock()
        cut = kept.position(now - self._playback_lag_s)
        kept.held = True
        kept.woken.set()
        await self._silence(now, always=False)
        return cut

    async def stop(self, turn: int) -> int:
        """Barge-in that stands: drop the turn's pending and future audio and clear what the transport still
        buffers; returns the byte heard up to."""
        kept = self.audio_of(turn)
        now = self._clock()
        cut = kept.position(now - self._playback_lag_s)
        was_held, kept.stopped = kept.held, True
        kept.woken.set()
        self._acked.set()  # nothing more of it will be acknowledged: whoever waits for it is done
        await self._silence(now, always=not was_held)  # a held turn was cleared already
        return cut

    async def interrupt(self, turn: int) -> None:
        await self.stop(turn)

    async def _silence(self, now: float, *, always: bool) -> None:
        """Clear the transport's buffer if it may still be playing (or `always`); forget what will not play."""
        if always or self._play_end > now - CLEAR_SLACK_S:
            await self._transport.clear()
        if self._play_end > now:
            self._play_end = now
            stopped_at = now - self._playback_lag_s  # what the caller had heard when the carrier stopped
            keep = bisect.bisect_right(self._level_times, stopped_at)
            del self._level_times[keep:], self._levels[keep:]
            for kept in self._turns.values():
                while kept.frames and kept.frames[-1][0] > stopped_at:
                    kept.frames.pop()
                if kept.frames:  # the frame playing then stops where it was
                    plays_at, first, _ = kept.frames[-1]
                    kept.frames[-1] = (plays_at, first, kept.position(stopped_at))

    async def resume_point(self, turn: int, cut: int, wait_s: float = 0.5) -> ResumePoint:
        """Where to go on after a hold at byte `cut`: the first word the caller did not hear (a word heard in part
        is said again). Waits up to `wait_s` for the voice to finish the segment the cut fell in."""
        kept = self.audio_of(turn)
        acked = [segment for segment in kept.segments if segment.played]
        if acked:
            cut = max(cut, acked[-1].end)  # an acknowledgement is surer than the clock
        segment = await self._segment_at(kept, cut, wait_s)
        if segment is None:  # past every finished segment: nothing of it was lost
            return ResumePoint(cut, len(kept.text))
        words = segment.words or estimated_words(segment.text, bytes(kept.audio[segment.start:segment.end]),
                                                 self._format)
        point = first_unheard(words, cut - segment.start, segment.end - segment.start)
        if point is None:
            return ResumePoint(segment.end, segment.char + len(segment.text))
        char, byte = point
        return ResumePoint(segment.start + byte, segment.char + char)

    async def _segment_at(self, kept: TurnAudio, cut: int, wait_s: float) -> PlayedSegment | None:
        deadline = self._clock() + wait_s
        while True:
            for segment in kept.segments:
                if segment.start <= cut < segment.end:
                    return segment
            if cut < kept.segment_start or cut >= len(kept.audio) or self._clock() >= deadline:
                return None
            self._segment_done.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    await self._segment_done.wait()
            except TimeoutError:
                return None

    async def resume(self, turn: int, point: ResumePoint) -> None:
        """Play a held turn again from `point`: the rest of its kept audio, with checkpoints of new names."""
        kept = self.audio_of(turn)
        if kept.stopped or not kept.held:
            return
        kept.held, kept.resuming = False, True
        kept.resumed += 1
        kept.heard_char = max(kept.heard_char, point.char)
        kept.sent = point.byte
        try:
            # Segments the voice finishes meanwhile join the queue (sending yields to the transport).
            while unsent := [segment for segment in kept.segments if segment.end > kept.sent]:
                await self._send_up_to(kept, unsent[0].end, pad=True)
                if kept.held or kept.stopped:
                    return
                await self._checkpoint(kept, unsent[0])
        finally:
            kept.resuming = False
        await self._send_up_to(kept, len(kept.audio), pad=False)

    def cut_off(self, turn: int, point: ResumePoint) -> None:
        """The turn ends at `point` (the caller took the turn): what was heard is the text before it."""
        kept = self.audio_of(turn)
        kept.stopped = True
        kept.heard_char = max(kept.heard_char, point.char)
        self._acked.set()


def _add_word(segment: PlayedSegment, byte: int, char: int, end: int | None) -> None:
    """A word of the turn placed by the voice, kept on `segment` if its text is there (a voice that says words
    the text does not have is not trusted with positions)."""
    if not segment.char <= char < segment.char + len(segment.text):
        return
    last = None if end is None else min(end, segment.end) - segment.start
    word = WordSpan(char - segment.char, byte - segment.start, last)
    words = segment.words if segment.words is not None else []
    bisect.insort(words, word, key=lambda span: span.start)
    segment.words = words
