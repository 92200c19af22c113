"""The campaigns' notion of now: one function, so tests (and the benchmark) can move time."""
from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
