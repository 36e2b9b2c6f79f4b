"""What every service formatter shares: the event to tell about and the request to send.

An `Event` is one thing to say (an alert about a failed run, a failed attempt, a
recovery, or a test) with the run's variables; a formatter turns it into an
`Outgoing` request for its service, and `classify` reads the service's answer:
delivered, worth retrying, or a permanent error that marks the integration
broken (protocols.md part B).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KINDS = ("alert", "attempt", "recovery", "test")


@dataclass(frozen=True)
class Event:
    kind: str  # one of KINDS
    trigger: str  # on_failure, on_success, on_violation, test ...
    run_id: str | None
    job_id: int | None
    variables: dict[str, Any]
    at: datetime
    key: str = ""  # the delivery's id: the same on every attempt (idempotency key)

    @property
    def job_name(self) -> str:
        return str(self.variables.get("jobName") or f"job {self.job_id}")

    @property
    def state(self) -> str:
        """The run's state as shown (violation for a constraint, recovered for a recovery)."""
        if self.kind == "test":
            return "test"
        if self.kind == "recovery":
            return "succeeded"
        if self.trigger == "on_violation":
            return "violation"
        if self.kind == "attempt":
            return "failed"
        return str(self.variables.get("status") or "failed")


@dataclass(frozen=True)
class Outgoing:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Verdict:
    """How an answer (or its absence) ends an attempt."""

    ok: bool
    retry: bool = False
    broken: str | None = None  # a permanent error: the integration is broken, with why
    retry_after: float | None = None


def verdict(status: int | None, body: str, retry_after: float | None) -> Verdict:
    """The generic rule (protocols.md B4): 2xx ok; 429/5xx/no answer retried; 410 broken."""
    if status is None:
        return Verdict(False, retry=True)
    if 200 <= status < 300:
        return Verdict(True)
    if status == 429 or status >= 500 or status == 408:
        return Verdict(False, retry=True, retry_after=retry_after)
    if status == 410:
        return Verdict(False, broken=f"the endpoint answered 410 Gone: {body[:100]}")
    return Verdict(False)


def human_duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def excerpt(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
