"""Real speech for the benchmarks' callers: espeak-ng, as 8 kHz mu-law (or another format) trimmed to the voice.

A tone is not speech to the voice detector, so callers that should be heard as talking say real words.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from voicebots.telephony.simulator import load_wav
from voicebots.voice.audio import MULAW_8K, AudioFormat

ONSET_LEVEL = 300  # sample amplitude (about -40 dBFS) where a clip's voice starts


def spoken(text: str, voice: str = "en-us", words_per_minute: int = 160,
           audio_format: AudioFormat = MULAW_8K) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                       check=True, capture_output=True)
        return trimmed(load_wav(path, audio_format), audio_format)


def trimmed(audio: bytes, audio_format: AudioFormat = MULAW_8K) -> bytes:
    """Without the silence around the sound: the clip starts where the voice starts."""
    loud = np.flatnonzero(np.abs(audio_format.to_pcm16(audio)) > ONSET_LEVEL)
    if not len(loud):
        return b""
    width = audio_format.sample_bytes
    return audio[loud[0] * width:(loud[-1] + 1) * width]
