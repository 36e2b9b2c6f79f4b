"""The detector's baselines and scores, pure: the minimum-sample rule, the explanation
texts (pinned), seasonality, lateness, failure streaks and rates, silent slots."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from itinerary.anomaly.models import DurationModel, FailureModel, LatenessModel, Window
from itinerary.anomaly.silence import silent_slots, slot_anomaly_id
from itinerary.jobs import parse_job

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday


def steady(model: DurationModel, count: int = 50, median: float = 130.0) -> None:
    """`count` runs at median * e^(+-0.1): median exactly `median`, MAD exactly 0.1."""
    for n in range(count):
        model.add(median * math.exp(0.1 if n % 2 else -0.1), 12, 0)


def test_it_never_flags_the_duration_of_a_job_with_three_runs():
    model = DurationModel()
    for seconds in (60, 61, 59):
        model.add(seconds, 3, 0)
    assert model.score(60_000, 3, 0) is None and model.score(0.01, 3, 0) is None


def test_it_explains_a_slow_run_in_words():
    model = DurationModel()
    steady(model)
    found = model.score(852, 12, 0)
    assert found.kind == "duration" and round(found.score, 1) == 18.8
    assert found.explanation == (
        "took 14m12s; the last 50 successful runs took 2m10s median, 18.8 MADs above"
    )


def test_it_explains_a_run_that_ended_too_soon():
    model = DurationModel()
    steady(model)
    found = model.score(3, 12, 0)
    assert found.explanation == (
        "took 3s; the last 50 successful runs took 2m10s median, 37.7 MADs below"
    )
    assert model.score(140, 12, 0) is None  # within the job's usual spread


def test_it_leaves_a_job_that_is_slow_every_night_alone_at_night():
    model, rng = DurationModel(), random.Random(1)
    for day in range(30):
        for hour in range(24):
            base = 600 if hour == 2 else 60
            model.add(base * math.exp(rng.gauss(0, 0.05)), hour, day % 7)
    assert model.score(610, 2, 3) is None  # a night run as slow as every night
    found = model.score(600, 14, 3)  # as slow in the afternoon: unusual
    assert found is not None and found.score > 6


def test_it_explains_a_late_start():
    model = LatenessModel()
    for n in range(30):
        model.add(0.1 + (n % 3) * 0.05)
    assert model.score(5.0) is None  # a few seconds late is noise
    found = model.score(252)
    assert found.explanation == (
        "started 4m12s after its slot; the last 30 starts were 150ms late median, 125.9 MADs above"
    )


def test_it_flags_a_streak_of_failures_once():
    model = FailureModel()
    assert all(model.add(False) is None for _ in range(100))
    assert model.add(True) is None and model.add(True) is None
    found = model.add(True)
    assert found.kind == "failure_rate"
    assert (
        found.explanation == "failed 3 times in a row; it failed 0 of the 83 runs before, p = 2e-06"
    )
    assert model.add(True) is None  # the same spell: said once


def test_it_flags_a_failure_rate_above_the_job_usual():
    model, rng = FailureModel(), random.Random(3)
    for _ in range(180):
        model.add(rng.random() < 0.05)
    found = [model.add(n % 2 == 0) for n in range(20)]  # every other one fails: no streak
    assert [f.kind for f in found if f] == ["failure_rate"]
    assert "of the last 20 runs; it failed" in next(f for f in found if f).explanation


def test_it_finds_the_slots_that_have_no_run():
    job = parse_job({"name": "j", "commands": [["true"]], "schedule": "*/10 * * * *"})
    job = job.__class__(**{**job.__dict__, "id": 7, "created_at": T0 - timedelta(days=1)})
    recorded = {(7, T0 + timedelta(minutes=10)), (7, T0 + timedelta(minutes=30))}
    found = silent_slots([job], T0, T0 + timedelta(minutes=40), recorded)
    assert [slot for _, slot in found] == [T0 + timedelta(minutes=20), T0 + timedelta(minutes=40)]
    assert slot_anomaly_id(7, T0) == slot_anomaly_id(7, T0) != slot_anomaly_id(8, T0)


def test_it_keeps_a_window_median_and_mad_as_values_come_and_go():
    w = Window(5, [1, 2, 3, 4, 100])
    assert (w.median(), w.mad()) == (3, 1)
    w.add(5)  # 1 leaves
    assert (w.median(), w.mad()) == (4, 1)
