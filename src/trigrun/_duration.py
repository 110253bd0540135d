"""Durations in job specs and integration arguments: ``30``, ``2.5``, ``"30s"``, ``"5m"``,
``"1h30m"``, ``"250ms"``, ``"1d"``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_FIX = ("give seconds (30, 2.5), or a string such as '30', '30s', '5m', '1h30m', "
                "'250ms'")
# For the JSON schema: what the string form looks like.
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*$|^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|MS|S|M|H|D)\s*)+$"


def parse_duration(value: Any) -> float:
    """Seconds from a number, a ``timedelta`` or a duration string. ValueError otherwise
    (the message says what is accepted); the sign is the caller's to check."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; {DURATION_FIX}")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        parts = _PART.findall(text)
        if not parts or _PART.sub("", text).strip():
            raise ValueError(f"{value!r} is not a duration; {DURATION_FIX}")
        return sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts)
    raise ValueError(f"{value!r} ({type(value).__name__}) is not a duration; {DURATION_FIX}")
