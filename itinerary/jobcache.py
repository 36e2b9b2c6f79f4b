"""Each job version's JSON, cached per process for the jobs listing (`jobpages.py`).

Kept apart from the listing so that the writers (`jobstore.py`, `operations.py`) can
drop a job's entry without importing the read queries: the cache sits below both.
A version is named by `(id, updated_at)`; this process's own writes also `forget` the
job, so two saves within one tick of a (fake) clock are never taken for one version.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any

# Job versions kept as JSON text: ~2.5 KB each for a small job, more with a podSpec.
MAX_JOBS = 4096

_json: OrderedDict[int, tuple[Any, str]] = OrderedDict()  # job id -> (updated_at, JSON)
_generation = [0]  # bumped by every job change in this process


def get(job_id: int) -> tuple[Any, str] | None:
    """(updated_at, JSON) of the version last cached for the job, or None."""
    return _json.get(job_id)


def put(job_id: int, entry: tuple[Any, str]) -> None:
    """Cache a version; the oldest entries go first past `MAX_JOBS`."""
    _json[job_id] = entry
    while len(_json) > MAX_JOBS:  # reads may run in threads: another may have popped it
        with contextlib.suppress(KeyError):
            _json.popitem(last=False)


def forget(job_id: int | None) -> None:
    """This process changed the job: never answer from its cached JSON again."""
    if job_id is not None:
        _json.pop(job_id, None)
    _generation[0] += 1


def generation() -> int:
    """A number that changes whenever this process changes a job: part of the keys of
    answers that show jobs (`itinerary/briefcache.py`), so an edit shows at once."""
    return _generation[0]


def clear() -> None:
    _json.clear()
    _generation[0] += 1
