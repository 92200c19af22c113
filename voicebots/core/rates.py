"""Rates as written in settings: "100/10s" is 100 requests per window of 10 seconds. Settings-safe (no app code)."""
from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")


def parse_rate(name: str, text: str) -> tuple[int, int]:
    """"100/10s" -> (100, 10): requests per window of seconds. ImproperlyConfigured names the setting."""
    match = _RATE.match(text.lower())
    if not match or match.group(3) not in _PERIODS or int(match.group(1)) < 1 or match.group(2) == "0":
        raise ImproperlyConfigured(f"{name}={text!r} is not a rate: write COUNT/PERIOD, e.g. 100/10s or 600/min.")
    return int(match.group(1)), int(match.group(2) or 1) * _PERIODS[match.group(3)]
