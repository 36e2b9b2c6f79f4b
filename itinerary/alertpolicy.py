"""The alert policy of a webhook action: when a failing job is worth telling about.

Part of a job's definition (jobchecks.py validates it), applied by the webhook handler.

Per action (keys in the action's config, all optional):
- `afterFailures` (default 1): alert only once the job has failed this many runs in a row;
- `afterLastRetry` (default true): a failed attempt that will be retried alerts nobody;
  with false, the first failed attempt alerts and the run's final failure does not again;
- `realertEvery` (a duration; default unset: every failing run alerts): while the job keeps
  failing, alert at most this often;
- `recovery` (default true): when the job succeeds after an alert, say so (Slack, custom);
  PagerDuty always resolves its incident.

Deduplicated: one run alerts at most once, however many attempts fail. The state is
kept by the webhook handler, in memory, per (job, integration or URL); after a restart
the count starts again, and PagerDuty gets a resolve on each job's first success (an
incident opened before the restart is closed; PagerDuty ignores the others).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from itinerary.durations import parse_duration

KEYS = ("afterFailures", "afterLastRetry", "realertEvery", "recovery")
MAX_RUNS_REMEMBERED = 64


@dataclass(frozen=True)
class Policy:
    after_failures: int = 1
    after_last_retry: bool = True
    realert_every: float | None = None
    recovery: bool = True


def parse(config: dict[str, Any] | None) -> Policy:
    """The policy from an action's config; ValueError naming the key (jobs.py checks it)."""
    config = config or {}
    n = config.get("afterFailures", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000:
        raise ValueError("afterFailures must be a whole number from 1 to 1000")
    for key in ("afterLastRetry", "recovery"):
        if not isinstance(config.get(key, True), bool):
            raise ValueError(f"{key} must be true or false")
    every = config.get("realertEvery")
    seconds = None
    if every is not None:
        try:
            seconds = parse_duration(every)
        except ValueError as exc:
            raise ValueError(f"realertEvery: {exc}") from None
        if seconds <= 0:
            raise ValueError("realertEvery must be longer than zero")
    return Policy(n, config.get("afterLastRetry", True), seconds, config.get("recovery", True))


@dataclass
class _Streak:
    runs: list[str] = field(default_factory=list)  # failing runs in a row (newest last)
    alerted_runs: set[str] = field(default_factory=set)
    alerted_at: datetime | None = None  # an alert is open since


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: str = ""  # why not, when not


class Tracker:
    """Decides, event by event, whether a webhook action's message goes out."""

    def __init__(self) -> None:
        self._streaks: dict[tuple[int | None, str], _Streak] = {}
        self._known: set[tuple[int | None, str]] = set()  # keys seen since start-up

    def decide(
        self,
        key: tuple[int | None, str],
        kind: str,
        run_id: str | None,
        policy: Policy,
        now: datetime,
        *,
        resolve_unknown: bool = False,
    ) -> Decision:
        """Send or not. `resolve_unknown`: a recovery for a job this process has not seen fail
        yet goes out too (PagerDuty: an incident opened before a restart still gets resolved;
        it ignores a resolve with nothing open)."""
        first = key not in self._known
        self._known.add(key)
        if kind == "recovery":
            streak = self._streaks.pop(key, None)
            if resolve_unknown and first:
                return Decision(True)
            if streak is None or streak.alerted_at is None:
                return Decision(False, "no alert is open")
            return Decision(True)
        if kind == "attempt" and policy.after_last_retry:
            return Decision(False, "a retry follows (afterLastRetry)")
        streak = self._streaks.setdefault(key, _Streak())
        if run_id is not None and run_id in streak.alerted_runs:
            return Decision(False, f"run {run_id} alerted already")
        if run_id is None or run_id not in streak.runs:
            streak.runs.append(run_id or "")
            del streak.runs[:-MAX_RUNS_REMEMBERED]
        failures = len(streak.runs)
        if failures < policy.after_failures:
            return Decision(False, f"failure {failures} of {policy.after_failures} (afterFailures)")
        if streak.alerted_at is not None and policy.realert_every is not None:
            since = (now - streak.alerted_at).total_seconds()
            if since < policy.realert_every:
                return Decision(False, f"alerted {since:g}s ago (realertEvery)")
        streak.alerted_at = now
        if run_id is not None:
            streak.alerted_runs.add(run_id)
            if len(streak.alerted_runs) > MAX_RUNS_REMEMBERED:
                streak.alerted_runs = set(streak.runs)
        return Decision(True)
