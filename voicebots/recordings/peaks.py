"""A recording's waveform for the console: the loudest sample of each channel in every 50 ms, one byte each.

Computed on the server from the WAV once and kept with the recording, so a page shows a 30-minute call's
waveform from ~70 KB instead of downloading 57 MB.
"""
from __future__ import annotations

from typing import BinaryIO

import numpy as np

from . import wav

BUCKET_MS = 50
BUCKET_FRAMES = wav.SAMPLE_RATE * BUCKET_MS // 1000
_BLOCK_BUCKETS = 1200  # one minute of audio read at a time


def compute(file: BinaryIO) -> bytes:
    """Peaks of the WAV in `file`: bytes [caller, bot] per bucket, 0-255 (linear in the sample's magnitude)."""
    info = wav.read_info(file.read(wav.HEADER_BYTES))
    left = info.data_bytes
    out = []
    while left > 0:
        data = file.read(min(left, _BLOCK_BUCKETS * BUCKET_FRAMES * wav.FRAME_BYTES))
        if not data:
            break
        left -= len(data)
        samples = np.frombuffer(data[:len(data) - len(data) % wav.FRAME_BYTES], dtype="<i2").reshape(-1, 2)
        whole = len(samples) - len(samples) % BUCKET_FRAMES
        blocks = [samples[:whole].reshape(-1, BUCKET_FRAMES, 2)]
        if whole < len(samples):
            blocks.append(samples[whole:].reshape(1, -1, 2))
        for block in blocks:
            loudest = np.abs(block.astype(np.int32)).max(axis=1)  # (buckets, 2)
            out.append(np.minimum(loudest >> 7, 255).astype(np.uint8).tobytes())
    return b"".join(out)
