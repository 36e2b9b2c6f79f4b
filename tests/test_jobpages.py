"""Job pages from cached JSON: a changed job is never answered with its old JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from itinerary import jobpages, jobstore
from itinerary.db import Database
from itinerary.jobs import JobSpec
from itinerary.models import Job
from itinerary.queries import JobFilter

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    jobpages.clear()


def save(database: Database, spec: JobSpec, now: datetime = T0) -> JobSpec:
    def write() -> JobSpec:
        with database.writer.atomic():
            return jobstore.save_job(database.writer, spec, now)

    return database.write(write)


def names_and_descriptions(database: Database, **filters) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    items, _ = database.read(jobpages.page, JobFilter(**filters))
    return [(j["name"], j["description"]) for j in map(json.loads, items)]


def make(database: Database) -> JobSpec:
    spec = JobSpec(name="a", commands=(("true",),), tags=("team-1",), description="one")
    save(database, JobSpec(name="b", commands=(("true",),), tags=("team-1",)))
    return save(database, spec)


def test_it_answers_from_the_cached_version_while_the_row_is_unchanged(database) -> None:
    make(database)
    assert names_and_descriptions(database, tags=("team-1",)) == [("a", "one"), ("b", "")]
    # Written behind every writer's back, updated_at kept: the cached JSON is what is served.
    database.write(lambda: Job.update(description="sneaky").execute(database.writer))
    assert names_and_descriptions(database, tags=("team-1",)) == [("a", "one"), ("b", "")]


def test_it_answers_a_job_changed_by_another_process_with_its_new_json(database) -> None:
    job = make(database)
    names_and_descriptions(database, tags=("team-1",))
    later = T0 + timedelta(microseconds=1)  # another process: no forget() here, a new version
    query = Job.update(description="two", updated_at=later).where(Job.id == job.id)
    database.write(lambda: query.execute(database.writer))
    assert names_and_descriptions(database, tags=("team-1",)) == [("a", "two"), ("b", "")]


def test_it_never_mistakes_two_saves_at_one_instant_for_one_version(database) -> None:
    job = make(database)
    names_and_descriptions(database, tags=("team-1",))
    save(database, JobSpec(**{**job.__dict__, "description": "same instant"}))  # same T0
    assert names_and_descriptions(database, tags=("team-1",))[0] == ("a", "same instant")


def test_it_follows_tag_changes_and_archiving(database) -> None:
    job = make(database)
    names_and_descriptions(database, tags=("team-1",))
    save(database, JobSpec(**{**job.__dict__, "tags": ("team-2",)}), T0 + timedelta(seconds=1))
    assert names_and_descriptions(database, tags=("team-1",)) == [("b", "")]
    assert names_and_descriptions(database, tags=("team-2",)) == [("a", "one")]
    database.write(jobstore.archive_job, database.writer, job.id, T0 + timedelta(seconds=2))
    assert names_and_descriptions(database, tags=("team-2",)) == []


def test_it_pages_with_a_cursor_like_the_uncached_listing(database) -> None:
    make(database)
    first, cursor = database.read(jobpages.page, JobFilter(limit=1))
    rest, end = database.read(jobpages.page, JobFilter(limit=1, cursor=cursor))
    assert [json.loads(j)["name"] for j in first + rest] == ["a", "b"]
    assert cursor is not None and end is None
