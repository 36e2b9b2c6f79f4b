"""Durations as people write them: `30s`, `5m`, `1h30m`, `2d`, `250ms`.

Used by the command line, the config file, job constraints and action configs,
so a duration means the same thing wherever it is typed.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`; ValueError with the reason when it is not a duration.

    Bare numbers are seconds. Negative durations are refused.
    """
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h30m")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("must not be negative")
        return float(text)
    s = str(text).strip().lower()
    if s.startswith("-"):
        raise ValueError(f"{text!r} is negative; durations must be zero or more")
    try:
        return float(s)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s) or not s:
        raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 5m, 1h30m, 2d)")
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 90 -> '1m30s', 0.25 -> '250ms'."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    out, rest = [], int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"
