"""The WAV container of recordings: 8 kHz, 16-bit PCM, two channels, and the repair of a file cut short.

A recording is written while the call goes on and its header is rewritten every few seconds; a process that
dies leaves a header that counts fewer bytes than the file holds. `repair` makes the header match the file.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

SAMPLE_RATE = 8000
CHANNELS = 2
SAMPLE_BYTES = 2
FRAME_BYTES = CHANNELS * SAMPLE_BYTES  # one sample of each channel
BYTES_PER_SECOND = SAMPLE_RATE * FRAME_BYTES
HEADER_BYTES = 44
_RIFF_SIZE_AT = 4
_DATA_SIZE_AT = 40


def header(data_bytes: int) -> bytes:
    """The 44-byte header of a PCM WAV with `data_bytes` of samples."""
    return b"".join([
        b"RIFF", struct.pack("<I", HEADER_BYTES - 8 + data_bytes), b"WAVE",
        b"fmt ", struct.pack("<IHHIIHH", 16, 1, CHANNELS, SAMPLE_RATE, BYTES_PER_SECOND, FRAME_BYTES, 16),
        b"data", struct.pack("<I", data_bytes),
    ])


def write_sizes(file: BinaryIO, data_bytes: int) -> None:
    """Rewrite the two sizes of the header in place (the file position is kept)."""
    position = file.tell()
    file.seek(_RIFF_SIZE_AT)
    file.write(struct.pack("<I", HEADER_BYTES - 8 + data_bytes))
    file.seek(_DATA_SIZE_AT)
    file.write(struct.pack("<I", data_bytes))
    file.seek(position)


@dataclass(frozen=True)
class WavInfo:
    channels: int
    sample_rate: int
    bits: int
    data_bytes: int  # what the header says

    @property
    def duration_s(self) -> float:
        return self.data_bytes / (self.sample_rate * self.channels * self.bits // 8)


class NotAWav(ValueError):
    pass


def read_info(head: bytes) -> WavInfo:
    """The format of a WAV written by this module, from its first 44 bytes."""
    if len(head) < HEADER_BYTES or head[:4] != b"RIFF" or head[8:12] != b"WAVE" or head[36:40] != b"data":
        raise NotAWav("Not a recording's WAV header.")
    _, _, channels, rate, _, _, bits = struct.unpack("<IHHIIHH", head[16:36])
    (data_bytes,) = struct.unpack("<I", head[40:44])
    return WavInfo(channels=channels, sample_rate=rate, bits=bits, data_bytes=data_bytes)


def repair(path: str | os.PathLike) -> int:
    """Make the header of the recording at `path` count every whole stereo frame the file holds (a process that
    died mid-call leaves it behind the data); a trailing partial frame is cut. Returns the data bytes."""
    with open(path, "r+b") as file:
        size = file.seek(0, os.SEEK_END)
        data_bytes = max(0, size - HEADER_BYTES)
        data_bytes -= data_bytes % FRAME_BYTES
        if size < HEADER_BYTES:
            file.seek(0)
            file.write(header(0))
        else:
            file.truncate(HEADER_BYTES + data_bytes)
            file.seek(0)
            file.write(header(data_bytes))
        return data_bytes
