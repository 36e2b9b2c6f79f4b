"""The local executor's fence: an attempt whose log file exists is never spawned again."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from itinerary import config as configmod
from itinerary.clock import RealClock
from itinerary.executors.base import FAILED, LOST, RUNNING, STARTED, SUCCEEDED
from itinerary.executors.local import LocalExecutor
from tests.test_local_executor import events, request


@pytest.fixture
def restart(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Executors of successive processes sharing one log folder."""
    made: list[LocalExecutor] = []

    def make() -> LocalExecutor:
        if made:
            made[-1].close()  # the processes keep running, nobody waits for them
        config = replace(configmod.load(None, {}), log_dir=str(tmp_path / "logs"))
        made.append(LocalExecutor(config, RealClock()))
        return made[-1]

    yield make
    made[-1].close()


def test_it_does_not_spawn_an_attempt_again_after_a_restart(restart, tmp_path) -> None:
    req = request("sh", "-c", f"echo ran >> {tmp_path}/out")
    first = restart().start(req)
    assert events(first)[-1].kind == SUCCEEDED
    again = restart().start(req)  # its start never reached the database
    got = events(again)
    assert [e.kind for e in got] == [STARTED, RUNNING, SUCCEEDED]
    assert (tmp_path / "out").read_text() == "ran\n"


def test_it_follows_a_live_wrapper_found_without_a_handle(restart, tmp_path) -> None:
    req = request("sh", "-c", f"sleep 0.5; echo ran >> {tmp_path}/out; exit 3")
    first = restart().start(req)
    adopted = restart().adopt(req, {})
    assert adopted is not None and adopted.handle["pid"] == first.handle["pid"]
    reaped = os.waitpid(first.handle["pid"], 0)  # in a real restart init reaps it
    got = events(adopted)
    assert (got[-1].kind, got[-1].exit_code, reaped[1] >> 8) == (FAILED, 3, 3)
    assert (tmp_path / "out").read_text() == "ran\n"


def test_it_reports_lost_when_the_marker_exists_but_nothing_ran(restart, tmp_path) -> None:
    req = request("sh", "-c", f"echo ran >> {tmp_path}/out")
    executor = restart()
    marker = Path(executor.log_dir) / "echo" / f"{req.run_id}-1.log"
    marker.parent.mkdir(parents=True)
    marker.touch()  # killed between the marker and the spawn
    got = events(executor.start(req))
    assert [e.kind for e in got] == [LOST]
    assert "neither its process nor its exit status" in (got[0].reason or "")
    assert not (tmp_path / "out").exists()


def test_it_adopts_nothing_when_the_attempt_never_started(restart) -> None:
    assert restart().adopt(request("true"), {}) is None
