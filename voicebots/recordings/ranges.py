"""HTTP `Range` requests for recordings (RFC 9110 §14): one byte range, so players seek without the whole file."""
from __future__ import annotations

import re

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unsatisfiable(ValueError):
    """A range that starts beyond the file: answered with 416."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte the `Range` header asks for, or None for the whole file (no header, a
    header we do not serve such as several ranges, or a malformed one, which RFC 9110 says to ignore)."""
    if not header:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            raise Unsatisfiable(header)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable(header)
    return start, end
