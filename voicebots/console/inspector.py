"""One call laid out for the inspector: each turn and event on the recording's clock, and each reply's latency
split into its stages."""
from __future__ import annotations

from dataclasses import dataclass, field

from voicebots.recordings import peaks as waveform

STAGES = ("stt", "llm", "tts", "platform")
QUIET_LEVEL = 8  # a peak (0-255) below this is silence on the caller's side
QUIET_GAP_S = 0.6  # this much silence before the caller's words marks where they started


@dataclass
class TurnView:
    turn: object
    at_s: float | None  # where the caller stopped speaking (a greeting: where it started), on the recording
    seek_s: float | None  # where the caller's words began: clicking the turn plays from here
    latency_ms: float | None
    stages: list[tuple[str, float, float]] = field(default_factory=list)  # (stage, ms, percent of the latency)
    slowest: bool = False
    width_pct: float = 0.0  # the latency bar's length against the call's slowest reply


@dataclass
class EventView:
    event: object
    at_s: float | None


def _offset(moment, origin) -> float | None:
    if moment is None or origin is None:
        return None
    return round((moment - origin).total_seconds(), 2)


def caller_onset(peaks: bytes | None, end_s: float, floor_s: float) -> float:
    """Where the caller's words ending at `end_s` began: back from there to the first stretch of QUIET_GAP_S
    without caller sound (never before `floor_s`)."""
    if not peaks:
        return max(floor_s, end_s - 2.0)
    per_s = 1000 / waveform.BUCKET_MS
    index = min(int(end_s * per_s), len(peaks) // 2 - 1)
    floor, quiet_needed, quiet, onset = int(floor_s * per_s), int(QUIET_GAP_S * per_s), 0, index
    while index > floor:
        index -= 1
        if peaks[2 * index] < QUIET_LEVEL:
            quiet += 1
            if quiet >= quiet_needed:
                break
        else:
            quiet, onset = 0, index
    return round(max(floor_s, onset / per_s - 0.2), 2)


def lay_out(call, recording, peaks: bytes | None) -> tuple[list[TurnView], list[EventView]]:
    origin = recording.started_at if recording is not None else call.stream_started_at or call.answered_at
    turns = []
    previous_end = 0.0
    for turn in call.turns.all():
        at = _offset(turn.speech_ended_at, origin)
        timings = turn.timings or {}
        latency = timings.get("latency_ms") if turn.caller_text else None
        view = TurnView(turn, at, None, latency)
        if at is not None:
            view.seek_s = caller_onset(peaks, at, previous_end) if turn.caller_text else max(0.0, at)
            previous_end = at + (timings.get("last_audio_sent_at_ms") or 0) / 1000
        if latency:
            for stage in STAGES:
                ms = max(0.0, timings.get(f"{stage}_ms") or 0.0)
                view.stages.append((stage, ms, round(100 * ms / latency, 1)))
        turns.append(view)
    replies = [view for view in turns if view.latency_ms]
    if replies:
        slowest = max(replies, key=lambda view: view.latency_ms)
        slowest.slowest = True
        for view in replies:
            view.width_pct = round(100 * view.latency_ms / slowest.latency_ms, 1)
    events = [EventView(event, _offset(event.created_at, origin)) for event in call.events.all()]
    return turns, events
