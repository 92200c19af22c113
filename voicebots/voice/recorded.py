"""Pre-recorded telephone lines shipped with the product (`assets/`, 8 kHz mu-law), for when no voice can speak."""
from __future__ import annotations

import functools
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
LINES = {
    "not_configured": "Sorry, this line is not set up to take calls yet. Please try again later. Goodbye.",
    "trouble": "Sorry, I'm having trouble right now. Could you say that again?",
}


@functools.cache
def recorded_line(name: str) -> tuple[str, bytes]:
    """(what it says, its audio)."""
    return LINES[name], (ASSETS / f"{name}.ulaw").read_bytes()
