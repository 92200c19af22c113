"""JSON request bodies, refused with a clear 400 where PostgreSQL or Python could not take them.

PostgreSQL stores no NUL character (\\u0000) in text or jsonb, and JSON nested thousands of levels deep
exhausts Python's recursion (and PostgreSQL's stack) long before any real request needs it.
"""
from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def storage_problem(data) -> str | None:
    """Why `data` (parsed JSON) cannot be stored, naming where; None when it can."""
    stack = [(data, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"The JSON is nested too deeply (more than {MAX_DEPTH} levels, at {where or 'the top'})."
        if isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                if "\x00" in key:
                    return f"A key at {where or 'the top'} contains a NUL character (\\u0000); remove it."
                stack.append((item, path, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str) and "\x00" in value:
            return f"The value at {where or 'the top'} contains a NUL character (\\u0000), which cannot be stored."
    return None


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"The JSON is nested too deeply (more than {MAX_DEPTH} levels).")
        problem = storage_problem(data)
        if problem:
            raise ParseError(problem)
        return data
