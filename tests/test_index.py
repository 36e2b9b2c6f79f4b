"""The ScheduledRunIndex and its incremental builder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itinerary.index import IndexBuilder
from itinerary.jobs import JobSpec

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def job(job_id: int, schedule: str | None = "* * * * *", **kw: object) -> JobSpec:
    return JobSpec(name=f"j{job_id}", id=job_id, schedule=schedule, **kw)


def minute(m: int) -> datetime:
    return datetime(2026, 3, 1, 12, m, tzinfo=UTC)


def build(*jobs: JobSpec) -> IndexBuilder:
    builder = IndexBuilder(grace_period=30, lookahead_window=600)
    builder.set_jobs(list(jobs))
    return builder


def test_it_holds_the_runs_between_now_minus_grace_and_now_plus_lookahead() -> None:
    index = build(job(1)).rebuild(T0)
    slots = index.between(index.lo, index.hi)
    assert [at for _, at in slots] == [minute(m) for m in range(1, 11)]


def test_it_answers_a_time_range_with_start_exclusive_end_inclusive() -> None:
    index = build(job(1), job(2, "*/5 * * * *")).rebuild(T0)
    assert sorted(index.between(minute(4), minute(5))) == [(1, minute(5)), (2, minute(5))]


def test_it_groups_a_time_range_by_instant() -> None:
    index = build(job(1), job(2, "*/5 * * * *"), job(3)).rebuild(T0)
    grouped = [(at, sorted(ids)) for at, ids in index.instants(minute(4), minute(6))]
    assert grouped == [(minute(5), [1, 2, 3]), (minute(6), [1, 3])]


def test_it_skips_paused_and_manual_only_jobs() -> None:
    index = build(job(1, enabled=False), job(2, None)).rebuild(T0)
    assert len(index) == 0


def test_it_appends_only_new_runs_on_an_incremental_rebuild() -> None:
    builder = build(job(1))
    first = builder.rebuild(T0)
    second = builder.rebuild(T0 + timedelta(minutes=2))
    assert second.between(second.lo, second.hi)[-1] == (1, minute(12))
    assert len(second) == len(first)
    # It should leave the old snapshot as it was (immutable).
    assert first.between(first.lo, first.hi)[-1] == (1, minute(10))


def test_it_advances_one_cursor_for_jobs_sharing_a_schedule() -> None:
    builder = build(*(job(i) for i in range(1, 1001)))
    builder.rebuild(T0)
    assert len(builder._groups) == 1
    index = builder.rebuild(T0 + timedelta(minutes=1))
    assert len(index.between(minute(10), minute(11))) == 1000


def test_it_replaces_a_changed_jobs_runs() -> None:
    builder = build(job(1), job(2))
    builder.rebuild(T0)
    builder.set_job(job(2, "*/5 * * * *"))
    index = builder.rebuild(T0 + timedelta(seconds=1))
    twos = [at for j, at in index.between(index.lo, index.hi) if j == 2]
    assert twos == [minute(5), minute(10)]
    assert len([1 for j, _ in index.between(index.lo, index.hi) if j == 1]) == 10


def test_it_adds_a_new_job_including_its_runs_inside_the_previous_window() -> None:
    builder = build(job(1))
    builder.rebuild(T0)
    builder.set_job(job(3, "*/2 * * * *"))
    index = builder.rebuild(T0 + timedelta(seconds=1))
    assert [at for j, at in index.between(index.lo, index.hi) if j == 3] == [
        minute(m) for m in (2, 4, 6, 8, 10)
    ]


def test_it_drops_a_removed_job() -> None:
    builder = build(job(1), job(2))
    builder.rebuild(T0)
    builder.remove_job(1)
    index = builder.rebuild(T0 + timedelta(minutes=5))
    assert {j for j, _ in index.between(index.lo, index.hi)} == {2}


def test_it_starts_over_when_time_jumps_past_the_window() -> None:
    builder = build(job(1))
    builder.rebuild(T0)
    index = builder.rebuild(T0 + timedelta(hours=3))
    assert index.between(index.lo, index.hi)[0] == (1, datetime(2026, 3, 1, 15, 1, tzinfo=UTC))


def test_it_finds_a_jobs_next_slot() -> None:
    index = build(job(1), job(2, "*/5 * * * *")).rebuild(T0)
    assert index.next_for(2, minute(5)) == minute(10)
    assert index.next_for(9, T0) is None
