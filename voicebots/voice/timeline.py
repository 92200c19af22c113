"""Per-turn timestamps, and the turn's latency split into the vendors' delays and the platform's own share.

All stamps are seconds on the call's clock (`clock.now()`). The reference point of a reply is the end of the
caller's speech (the last inbound audio with speech energy), so the figures are what the caller experiences.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from voicebots.core import clock

STAMPS = ("speech_ended", "transcript_final", "llm_request_sent", "first_token", "first_segment_sent",
          "first_tts_audio", "first_audio_sent", "last_audio_sent")


def _ms(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier) * 1000, 1)


@dataclass(slots=True)
class Timeline:
    """Stamps of one bot turn; each is set once (the first time it happens)."""

    started: float
    speech_ended: float | None = None
    transcript_final: float | None = None
    llm_request_sent: float | None = None
    first_token: float | None = None
    first_segment_sent: float | None = None
    first_tts_audio: float | None = None
    first_audio_sent: float | None = None
    last_audio_sent: float | None = None

    @classmethod
    def now(cls) -> Timeline:
        return cls(started=clock.now())

    def mark(self, stamp: str, at: float | None = None) -> None:
        if stamp not in STAMPS:
            raise ValueError(f"Unknown stamp {stamp!r}")
        if getattr(self, stamp) is None:
            setattr(self, stamp, clock.now() if at is None else at)

    @property
    def origin(self) -> float:
        """The moment the `*_at_ms` timings count from: the end of the caller's speech, or the turn's start."""
        return self.speech_ended if self.speech_ended is not None else self.started

    def timings(self) -> dict[str, float | None]:
        """Milliseconds. `*_at_ms` are offsets from the end of the caller's speech (or from the turn start,
        for a greeting); `stt_ms`, `llm_ms`, `tts_ms` are the vendors' own delays (final transcript after speech
        end, first token after the request, first audio after the first segment); `platform_ms` is the rest of
        `latency_ms` (speech end to first audio sent), i.e. what this platform itself adds."""
        origin = self.origin
        offsets = {f"{f.name}_at_ms": _ms(getattr(self, f.name), origin)
                   for f in fields(self) if f.name not in ("started", "speech_ended")}
        latency = _ms(self.first_audio_sent, origin)
        vendors = {
            "stt_ms": _ms(self.transcript_final, self.speech_ended),
            "llm_ms": _ms(self.first_token, self.llm_request_sent),
            "tts_ms": _ms(self.first_tts_audio, self.first_segment_sent),
        }
        known = [value for value in vendors.values() if value is not None]
        platform = None if latency is None else round(latency - sum(known), 1)
        return {**offsets, **vendors, "latency_ms": latency, "platform_ms": platform}
