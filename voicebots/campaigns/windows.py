"""Calling windows: local hours per weekday, e.g. {"mon": [["09:00", "17:00"]], "sat": [["10:00", "13:00"]]}.

A window is read in the contact's own time zone on each date, so 09:00 stays 09:00 local across
daylight-saving changes. "24:00" may end a window at midnight.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
END_OF_DAY = None  # a window ending at 24:00

Windows = dict[str, list[tuple[time, time | None]]]


class InvalidWindows(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"'{name}' is not a known time zone (use an IANA name such as America/New_York).")


def _clock(value, day: str) -> time | None:
    match = _CLOCK.match(str(value))
    if not match or (match.group(1) == "24" and match.group(2) != "00"):
        raise InvalidWindows(f"{day}: '{value}' is not a time of day as HH:MM (00:00 to 24:00).")
    return END_OF_DAY if match.group(1) == "24" else time(int(match.group(1)), int(match.group(2)))


def parse(raw) -> Windows:
    """Validated windows, sorted by start; InvalidWindows says what is wrong with which day."""
    if not isinstance(raw, dict):
        raise InvalidWindows('Expected an object of weekdays, e.g. {"mon": [["09:00", "17:00"]]}.')
    windows: Windows = {}
    for day, spans in raw.items():
        if day not in DAYS:
            raise InvalidWindows(f"'{day}' is not a weekday; use {', '.join(DAYS)}.")
        if not isinstance(spans, list):
            raise InvalidWindows(f'{day}: expected a list of ["HH:MM", "HH:MM"] pairs.')
        parsed = []
        for span in spans:
            if not (isinstance(span, (list, tuple)) and len(span) == 2):
                raise InvalidWindows(f'{day}: {span!r} is not a ["start", "end"] pair.')
            start, end = _clock(span[0], day), _clock(span[1], day)
            if start is END_OF_DAY:
                raise InvalidWindows(f"{day}: a window cannot start at 24:00.")
            if end is not END_OF_DAY and end <= start:
                raise InvalidWindows(f"{day}: the window {span[0]}-{span[1]} ends before it starts.")
            parsed.append((start, end))
        windows[day] = sorted(parsed)
    return windows


def has_any(windows: Windows) -> bool:
    return any(windows.values())


def _spans_on(windows: Windows, day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The windows of one local date as aware datetimes (a start in a DST gap moves forward with the clock)."""
    spans = []
    for start, end in windows.get(DAYS[day.weekday()], []):
        begins = datetime.combine(day, start, tzinfo=tz)
        ends = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz) if end is END_OF_DAY \
            else datetime.combine(day, end, tzinfo=tz)
        spans.append((begins, ends))
    return spans


def is_open(windows: Windows, tz_name: str, at: datetime) -> bool:
    tz = zone(tz_name)
    local = at.astimezone(tz)
    # Local wall-clock comparison: 09:00 means 09:00 on the contact's clock whatever the UTC offset.
    now_wall = local.replace(tzinfo=None)
    return any(begins.replace(tzinfo=None) <= now_wall < ends.replace(tzinfo=None)
               for begins, ends in _spans_on(windows, local.date(), tz))


def next_opening(windows: Windows, tz_name: str, after: datetime) -> datetime | None:
    """The first instant at or after `after` inside a window (in UTC), or None when there are no windows."""
    if is_open(windows, tz_name, after):
        return after
    tz = zone(tz_name)
    local_date = after.astimezone(tz).date()
    for offset in range(8):
        for begins, _ in _spans_on(windows, local_date + timedelta(days=offset), tz):
            opening = begins.astimezone(timezone.utc)
            if opening > after:
                return opening
    return None
