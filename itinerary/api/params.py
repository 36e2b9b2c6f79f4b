"""Query-string parameters, declared once per route and parsed the same way everywhere.

A route lists its `Param`s; `parse_query` turns the query string into typed values
(rejecting unknown names, collecting every bad value into one 400), and
`itinerary.api.openapi` documents the very same declarations, so the two cannot
disagree. Time values take RFC 3339 (`2026-03-01T12:00:00Z`) or a relative offset
from now (`-5m`, `-2h`, `-7d`, `+10m`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from itinerary.durations import parse_duration
from itinerary.errors import invalid
from itinerary.pagination import DEFAULT_LIMIT, MAX_LIMIT

RELATIVE_RE = re.compile(r"^[+-]\s*\d")
TIME_DOC = "RFC 3339 time (e.g. 2026-03-01T12:00:00Z) or relative to now (-5m, -2h, -7d)"


def parse_time(text: str, now: datetime) -> datetime:
    """RFC 3339 with an offset, `now`, or a signed duration from now; ValueError otherwise."""
    value = text.strip()
    if value == "now":
        return now
    if RELATIVE_RE.match(value):
        seconds = parse_duration(value[1:].strip())
        delta = timedelta(seconds=seconds)
        return now - delta if value[0] == "-" else now + delta
    if not re.match(
        r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$", value
    ):
        raise ValueError(
            f"{text!r} is not an RFC 3339 time with a zone or a relative time like -5m"
        )
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date and time") from None
    return parsed.astimezone(UTC)


@dataclass(frozen=True)
class Param:
    """One query parameter: its name, OpenAPI schema, description and parser."""

    name: str
    schema: dict[str, Any]
    description: str
    parse: Callable[[list[str], datetime], Any]
    default: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _single(values: list[str]) -> str:
    if len(values) > 1:
        raise ValueError("give it once")
    return values[0]


def string(name: str, description: str, *, max_length: int = 200) -> Param:
    def parse(values: list[str], now: datetime) -> str:
        value = _single(values)
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value

    return Param(name, {"type": "string", "maxLength": max_length}, description, parse)


def integer(name: str, description: str, *, default: int, lo: int, hi: int) -> Param:
    def parse(values: list[str], now: datetime) -> int:
        value = _single(values).strip()
        if not re.fullmatch(r"[+-]?\d{1,12}", value):
            raise ValueError("must be a whole number")
        number = int(value)
        if not lo <= number <= hi:
            raise ValueError(f"must be from {lo} to {hi}")
        return number

    schema = {"type": "integer", "minimum": lo, "maximum": hi, "default": default}
    return Param(name, schema, description, parse, default)


def time(name: str, description: str) -> Param:
    def parse(values: list[str], now: datetime) -> datetime:
        return parse_time(_single(values), now)

    return Param(name, {"type": "string"}, f"{description}; {TIME_DOC}", parse)


def duration(name: str, description: str) -> Param:
    """Seconds, written like `30s`, `5m` or `1h30m` (durations.py)."""

    def parse(values: list[str], now: datetime) -> float:
        return parse_duration(_single(values))

    return Param(name, {"type": "string"}, f"{description}, e.g. 30s, 5m, 1h30m", parse)


def boolean(name: str, description: str) -> Param:
    def parse(values: list[str], now: datetime) -> bool:
        value = _single(values).strip().lower()
        if value not in ("true", "false", "1", "0"):
            raise ValueError("must be true or false")
        return value in ("true", "1")

    return Param(name, {"type": "boolean", "default": False}, description, parse, False)


def choice(name: str, description: str, options: tuple[str, ...], default: str | None) -> Param:
    def parse(values: list[str], now: datetime) -> str:
        value = _single(values)
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    schema: dict[str, Any] = {"type": "string", "enum": list(options)}
    if default is not None:
        schema["default"] = default
    return Param(name, schema, description, parse, default)


def csv(name: str, description: str, options: tuple[str, ...] | None = None) -> Param:
    """A list, given comma-separated and/or repeated (`tags=a,b&tags=c`)."""

    def parse(values: list[str], now: datetime) -> list[str]:
        items = [part.strip() for value in values for part in value.split(",") if part.strip()]
        if not items:
            raise ValueError("must name at least one value")
        if len(items) > 50:
            raise ValueError("at most 50 values")
        if options is not None:
            bad = [i for i in items if i not in options]
            if bad:
                raise ValueError(f"{', '.join(bad)} not known; choose from {', '.join(options)}")
        return list(dict.fromkeys(items))

    item: dict[str, Any] = {"type": "string"}
    schema = {"type": "array", "items": item, "maxItems": 50}
    return Param(
        name, schema, f"{description} (comma-separated or repeated)", parse, None, {"explode": True}
    )


def parse_query(
    declared: tuple[Param, ...], query: Mapping[str, list[str]], now: datetime
) -> dict[str, Any]:
    """Typed values for every declared parameter (defaults when absent); 400 on any problem."""
    by_name = {p.name: p for p in declared}
    errors = {name: "unknown parameter" for name in query if name not in by_name}
    values: dict[str, Any] = {}
    for param in declared:
        raw = query.get(param.name)
        if not raw:
            values[param.name] = param.default
            continue
        try:
            values[param.name] = param.parse(raw, now)
        except ValueError as exc:
            errors[param.name] = str(exc)
    if errors:
        raise invalid(errors)
    return values


# Every keyset-paginated listing's two parameters (the cursor codec: itinerary/pagination.py).
LIMIT = integer("limit", "page size", default=DEFAULT_LIMIT, lo=1, hi=MAX_LIMIT)
CURSOR = string("cursor", "opaque cursor from a previous page's nextCursor", max_length=400)
