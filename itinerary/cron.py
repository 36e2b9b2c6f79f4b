"""Cron expressions evaluated in a job's IANA timezone.

Built on cronsim, which implements cronie's (Vixie cron's) DST semantics that
design.md asks for: fixed-time jobs run once when their local time repeats and
at the first instant after a skipped hour; wildcard jobs fire at every real
instant that matches. Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


class CronError(ValueError):
    """An invalid cron expression or timezone; `field` names which."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`, or CronError naming the timezone field."""
    if not isinstance(name, str) or not name.strip():
        raise CronError("timezone", "must be an IANA timezone name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError("timezone", f"unknown IANA timezone {name!r}") from None


def _expand(expr: str) -> str:
    text = " ".join(expr.split())
    return MACROS.get(text.lower(), text)


def _check_fields(expanded: str) -> None:
    """Name the offending field: cronsim's own messages do not always say which."""
    parts = expanded.split(" ")
    if len(parts) != 5:
        raise CronError(
            "schedule",
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}",
        )
    for idx, (part, name, (lo, hi)) in enumerate(
        zip(parts, FIELD_NAMES, FIELD_RANGES, strict=True)
    ):
        alone = ["*"] * 5
        alone[idx] = part
        try:
            CronSim(" ".join(alone), datetime(2000, 1, 1))
        except (CronSimError, ValueError) as exc:
            raise CronError(
                "schedule", f"{name} field {part!r} is invalid ({exc}); allowed {lo}-{hi}"
            ) from None


@dataclass(frozen=True)
class Schedule:
    """A validated cron expression bound to a timezone."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone(self.timezone)
        expanded = _expand(self.expression)
        try:
            CronSim(expanded, datetime(2000, 1, 1, tzinfo=ZoneInfo(self.timezone)))
        except (CronSimError, ValueError):
            _check_fields(expanded)
            raise CronError("schedule", f"invalid cron expression {self.expression!r}") from None

    @property
    def expanded(self) -> str:
        return _expand(self.expression)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after `after`, as aware UTC datetimes, forever."""
        tz = ZoneInfo(self.timezone)
        local = after.astimezone(tz)
        for fire in CronSim(self.expanded, local):
            yield fire.astimezone(UTC)

    def next_after(self, after: datetime) -> datetime:
        return next(self.iter_after(after))

    def next_n(self, after: datetime, count: int) -> list[datetime]:
        it = self.iter_after(after)
        return [next(it) for _ in range(count)]

    def describe(self) -> str:
        """A human-readable sentence, e.g. 'At 02:30 on Monday through Friday'."""
        text = CronSim(self.expanded, datetime(2000, 1, 1)).explain()
        return text if self.timezone == "UTC" else f"{text} ({self.timezone})"
