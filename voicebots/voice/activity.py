"""Energy-based voice activity on the caller's audio: when did the caller last make speech-level sound?

It stamps the end of the caller's speech for the timeline, tells the session when the line went quiet
(to ask the STT to finalize), and is the hook for energy-based barge-in rules.
"""
from __future__ import annotations

from .audio import MULAW_8K, AudioFormat

DEFAULT_SPEECH_RMS = 500.0  # about -36 dBFS: well above line noise, well below normal speech


class VoiceActivity:
    def __init__(self, speech_rms: float = DEFAULT_SPEECH_RMS, audio_format: AudioFormat = MULAW_8K) -> None:
        self._speech_rms = speech_rms
        self._format = audio_format
        self.last_speech_at: float | None = None
        self.speaking = False

    def update(self, audio: bytes, now: float) -> bool:
        """Feed caller audio that arrived at `now`; True if it carries speech."""
        self.speaking = self._format.rms(audio) >= self._speech_rms
        if self.speaking:
            self.last_speech_at = now
        return self.speaking

    def silent_for(self, now: float) -> float | None:
        """Seconds since the last speech, None if there was none yet."""
        return None if self.last_speech_at is None else now - self.last_speech_at
