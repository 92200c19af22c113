"""Pre-recorded telephone lines shipped with the product (`assets/`, 8 kHz mu-law), for when no voice can speak."""
from __future__ import annotations

import functools
from pathlib import Path

from .audio import MULAW_8K, AudioFormat, convert

ASSETS = Path(__file__).resolve().parent / "assets"
LINES = {
    "not_configured": "Sorry, this line is not set up to take calls yet. Please try again later. Goodbye.",
    "trouble": "Sorry, I'm having trouble right now. Could you say that again?",
}


@functools.cache
def recorded_line(name: str, audio_format: AudioFormat = MULAW_8K) -> tuple[str, bytes]:
    """(what it says, its audio in `audio_format`)."""
    return LINES[name], convert((ASSETS / f"{name}.ulaw").read_bytes(), MULAW_8K, audio_format)
