"""A call's stereo recording, written while the call goes on: left the caller, right what the caller heard.

The call's event loop tells the recorder four things, each a few list operations (the call runtime's audio tap:
`caller_audio`, `bot_audio`, `cleared`, and `close`): caller audio arrived, a bot frame was sent, the caller's
playback buffer was cleared (barge-in), the call ended. Decoding and disk writes
happen about once a second on a writer thread shared by the calls of the process, so the loop never waits on
the disk.

Where audio goes on the recording's clock (samples since the recorder started):
- caller audio back to back as it arrives (network jitter delays frames and then delivers them in a burst;
  they belong one after the other); when the stream falls more than `GAP_S` behind the clock (frames that
  never came, a stream that paused), the audio resumes at its arrival time after silence, so the two channels
  stay aligned within that;
- bot frames on a playback clock, as the carrier plays them: a frame starts when the one before it ends, or
  when it is sent if nothing is playing; a clear at time t drops every sample scheduled from t on. Bot audio is
  kept in memory until its playback time has passed, since a barge-in may still cut it.

The header is rewritten every `HEADER_EVERY_S` of audio, so a process that dies leaves a playable file that lags the
audio by at most that much (`wav.repair` makes it whole).
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from voicebots.core import clock as call_clock
from voicebots.voice.audio import MULAW_8K, AudioFormat

from . import wav

logger = logging.getLogger(__name__)

RATE = wav.SAMPLE_RATE
GAP_S = 1.0  # caller audio this far behind the clock resumes at its arrival time (silence in between)
COMMIT_LAG_S = 0.5  # audio is written once it is this far in the past (late caller frames still fit)
FLUSH_EVERY_S = 1.0
HEADER_EVERY_S = 2.0
MAX_PENDING_WRITES = 30  # flushes waiting for the disk; past this the disk is not keeping up

_writer: ThreadPoolExecutor | None = None
_writer_lock = threading.Lock()


def shared_writer() -> ThreadPoolExecutor:
    """One thread writes every recording of the process, in the order the calls hand over their audio."""
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recordings")
        return _writer


@dataclass(frozen=True)
class RecordingResult:
    path: Path
    data_bytes: int
    error: str | None  # what went wrong, if anything; the file then holds the audio up to the failure
    had_audio: bool = True  # False: neither side sent any audio (the file is only silence)

    @property
    def duration_s(self) -> float:
        return self.data_bytes / wav.BYTES_PER_SECOND


Part = tuple[int, bytes]  # (start, on the recording's 8 kHz clock; audio in the channel's format)


class _Channel:
    """One side's audio format, measured on the recording's 8 kHz clock (mu-law at 8 kHz is one byte a sample;
    a browser's 16 or 48 kHz PCM is resampled)."""

    def __init__(self, audio_format: AudioFormat) -> None:
        self.format = audio_format
        self._bytes_per_sample = audio_format.sample_bytes * audio_format.sample_rate / RATE

    def samples(self, data: bytes) -> int:
        return int(len(data) / self._bytes_per_sample)

    def cut(self, data: bytes, samples: int) -> int:
        """The byte offset of `data` that is `samples` in."""
        offset = int(samples * self._bytes_per_sample)
        return offset - offset % self.format.sample_bytes

    def decode(self, data: bytes, samples: int) -> np.ndarray:
        """`samples` 16-bit samples at 8 kHz."""
        pcm = self.format.to_pcm16(data)
        if len(pcm) == samples or not len(pcm):
            return pcm[:samples]
        positions = np.linspace(0, len(pcm) - 1, samples)
        return np.interp(positions, np.arange(len(pcm)), pcm).astype(np.int16)

    def split(self, parts: list[Part], horizon: int) -> tuple[list[Part], list[Part]]:
        """`parts` (in order of start) cut at `horizon`: those before it and those from it on."""
        before: list[Part] = []
        for i, (start, data) in enumerate(parts):
            if start >= horizon:
                return before, parts[i:]
            if start + self.samples(data) > horizon:
                cut = self.cut(data, horizon - start)
                return before + [(start, data[:cut])], [(horizon, data[cut:])] + parts[i + 1:]
            before.append((start, data))
        return before, []

    def runs(self, parts: list[Part]) -> list[Part]:
        """Adjacent parts joined, so that each run is decoded once."""
        runs: list[Part] = []
        pending: list[bytes] = []
        run_start = run_end = -1
        for start, data in parts:
            if start != run_end and pending:
                runs.append((run_start, b"".join(pending)))
                pending = []
            if not pending:
                run_start = start
            pending.append(data)
            run_end = start + self.samples(data)
        if pending:
            runs.append((run_start, b"".join(pending)))
        return runs


class _WavWriter:
    """The file side, on the writer thread only."""

    def __init__(self, path: Path, caller: _Channel, bot: _Channel) -> None:
        self.path = path
        self.channels = (caller, bot)
        self.file = None
        self.data_bytes = 0
        self.error: str | None = None
        self._header_bytes = 0  # data bytes the header counts

    def write(self, start: int, end: int, caller: list[Part], bot: list[Part], final: bool) -> None:
        if self.error is not None:
            return
        try:
            if self.file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.file = open(self.path, "wb")
                self.file.write(wav.header(0))
            if end > start:
                block = np.zeros((end - start, 2), dtype=np.int16)
                for index, parts in ((0, caller), (1, bot)):
                    channel = self.channels[index]
                    for at, data in channel.runs(parts):
                        length = min(channel.samples(data), end - at)
                        block[at - start:at - start + length, index] = channel.decode(data, length)
                self.file.write(block.tobytes())
                self.data_bytes += block.nbytes
            if final or self.data_bytes - self._header_bytes >= HEADER_EVERY_S * wav.BYTES_PER_SECOND:
                self.file.flush()  # to the OS: a crash of the process keeps what was written
                wav.write_sizes(self.file, self.data_bytes)
                self._header_bytes = self.data_bytes
            if final:
                self.file.close()
        except OSError as error:
            self.error = f"Writing the recording failed: {error.strerror or error}."
            logger.warning("Recording %s stopped: %s", self.path, error)
            self._close_quietly()

    def _close_quietly(self) -> None:
        if self.file is not None:
            try:
                wav.write_sizes(self.file, self.data_bytes)
                self.file.close()
            except (OSError, ValueError):
                pass


class StereoRecorder:
    """Records one call into the WAV file at `path` (created with its folders on the first write). Each side's
    audio comes in its transport's format (mu-law at 8 kHz on the phone).

    Times are `clock()` seconds (by default the call's clock, voicebots/core/clock.py); every method takes an
    explicit `at` for tests.
    """

    def __init__(self, path: str | os.PathLike, *, caller_format: AudioFormat = MULAW_8K,
                 bot_format: AudioFormat = MULAW_8K, clock: Callable[[], float] = call_clock.now,
                 writer: ThreadPoolExecutor | None = None) -> None:
        self.path = Path(path)
        self._clock = clock
        self.started = clock()
        self._writer = writer or shared_writer()
        self._caller_channel, self._bot_channel = _Channel(caller_format), _Channel(bot_format)
        self._file = _WavWriter(self.path, self._caller_channel, self._bot_channel)
        self._caller: list[Part] = []
        self._caller_end = 0
        self._bot: list[Part] = []
        self._bot_end = 0
        self._written = 0  # samples handed to the writer
        self._next_flush = int(FLUSH_EVERY_S * RATE)
        self._pending: deque[Future] = deque()
        self._failed: str | None = None
        self._closed = False

    def _sample(self, at: float | None) -> int:
        return int(((self._clock() if at is None else at) - self.started) * RATE)

    # --- what the call tells it -------------------------------------------------------------------------

    def caller_audio(self, audio: bytes, at: float | None = None) -> None:
        """Caller audio that arrived now."""
        if self._closed or not audio:
            return
        now = self._sample(at)
        start = self._caller_end
        length = self._caller_channel.samples(audio)
        arrived_after = now - length  # where the chunk starts if it was sent as it was spoken
        if arrived_after - start > GAP_S * RATE:
            start = arrived_after
        start = max(start, self._written)
        self._caller.append((start, audio))
        self._caller_end = start + length
        self._maybe_flush(now)

    def bot_audio(self, frame: bytes, at: float | None = None) -> None:
        """A bot frame handed to the carrier now: it plays after what is already queued."""
        if self._closed or not frame:
            return
        now = self._sample(at)
        start = max(self._bot_end, now, self._written)
        self._bot.append((start, frame))
        self._bot_end = start + self._bot_channel.samples(frame)
        self._maybe_flush(now)

    def cleared(self, at: float | None = None) -> None:
        """The carrier dropped the audio it had not played yet (barge-in): nothing from now on was heard."""
        if self._closed:
            return
        now = max(self._sample(at), self._written)
        self._bot, _ = self._bot_channel.split(self._bot, now)
        self._bot_end = min(self._bot_end, now)

    async def close(self, at: float | None = None) -> RecordingResult:
        """The call ended (now, or at `at`): bot audio still queued was never heard; the recording lasts as long
        as the call; everything is written and the file closed. Awaits the writer thread (without blocking the
        loop)."""
        if not self._closed:
            self.cleared(at)
            self._closed = True
            end = max(self._caller_end, self._bot_end, self._written, self._sample(at))
            self._commit(end, final=True)
        if self._pending:
            await asyncio.wrap_future(self._pending[-1])
        return self.result()

    def result(self) -> RecordingResult:
        return RecordingResult(self.path, self._file.data_bytes, self._failed or self._file.error,
                               had_audio=bool(self._caller_end or self._bot_end))

    # --- handing audio to the writer -------------------------------------------------------------------

    def _maybe_flush(self, now: int) -> None:
        if now >= self._next_flush:
            self._next_flush = now + int(FLUSH_EVERY_S * RATE)
            self._commit(now - int(COMMIT_LAG_S * RATE), final=False)

    def _commit(self, horizon: int, final: bool) -> None:
        if (horizon <= self._written and not final) or self._failed:
            return
        horizon = max(horizon, self._written)
        caller, self._caller = self._caller_channel.split(self._caller, horizon)
        bot, self._bot = self._bot_channel.split(self._bot, horizon)
        start, self._written = self._written, horizon
        while self._pending and self._pending[0].done():
            self._pending.popleft()
        if len(self._pending) >= MAX_PENDING_WRITES and not final:
            self._failed = "The disk did not keep up with the recording; it stopped here."
            self._caller, self._bot = [], []
            self._pending.append(self._writer.submit(self._file.write, start, start, [], [], True))
            self._closed = True
            return
        self._pending.append(self._writer.submit(self._file.write, start, horizon, caller, bot, final))
