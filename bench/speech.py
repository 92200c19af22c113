"""Real speech for the benchmarks' callers: espeak-ng, as 8 kHz mu-law trimmed to the voice.

A tone is not speech to the voice detector, so callers that should be heard as talking say real words.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from voicebots.telephony.simulator import load_wav_as_mulaw
from voicebots.voice.audio import mulaw_to_pcm16

ONSET_LEVEL = 300  # sample amplitude (about -40 dBFS) where a clip's voice starts


def spoken(text: str, voice: str = "en-us", words_per_minute: int = 160) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
                       check=True, capture_output=True)
        return trimmed(load_wav_as_mulaw(path))


def trimmed(audio: bytes) -> bytes:
    """Without the silence around the sound: the clip starts where the voice starts."""
    loud = np.flatnonzero(np.abs(mulaw_to_pcm16(audio)) > ONSET_LEVEL)
    return audio[loud[0]:loud[-1] + 1] if len(loud) else b""
