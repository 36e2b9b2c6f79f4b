"""The local executor with real processes: exit codes, logs, env, kill, adoption."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import gevent
import pytest

from itinerary import config as configmod
from itinerary.clock import RealClock
from itinerary.executors.base import (
    FAILED,
    KILLED,
    LOST,
    RUNNING,
    STARTED,
    SUCCEEDED,
    ExecEvent,
    Execution,
    ExecutorError,
    RunRequest,
)
from itinerary.executors.local import LocalExecutor, proc_start_time
from itinerary.jobs import JobSpec


@pytest.fixture
def executor(tmp_path: Path) -> LocalExecutor:
    config = replace(configmod.load(None, {}), log_dir=str(tmp_path / "logs"), kill_grace_period=1)
    ex = LocalExecutor(config, RealClock())
    yield ex
    ex.close()


def request(*command: str, args: tuple[str, ...] = (), env: dict | None = None, **kw) -> RunRequest:
    job = JobSpec(name="echo", id=1, commands=(command,), env=env or {})
    return RunRequest("rlocaltest00001", job, datetime.now(UTC), args=args, **kw)


def events(execution: Execution, timeout: float = 5) -> list[ExecEvent]:
    out: list[ExecEvent] = []
    with gevent.Timeout(timeout):
        while not out or not out[-1].final:
            out.append(execution.events.get())
    return out


def test_it_runs_the_command_with_args_and_captures_output(executor) -> None:
    ex = executor.start(request("echo", "hello", args=("world",)))
    got = events(ex)
    assert [e.kind for e in got] == [STARTED, RUNNING, SUCCEEDED]
    assert got[-1].exit_code == 0
    assert executor.logs(ex.handle) == "hello world\n"
    assert ex.handle["log"].endswith("echo/rlocaltest00001-1.log")


def test_it_reports_a_failing_command_with_its_exit_code(executor) -> None:
    got = events(executor.start(request("sh", "-c", "echo oops >&2; exit 3")))
    assert (got[-1].kind, got[-1].exit_code, got[-1].reason) == (FAILED, 3, "exit code 3")


def test_it_passes_the_job_env_and_the_overrides(executor) -> None:
    req = request("sh", "-c", 'echo "$A-$B"', env={"A": "job", "B": "job"}, attempt=2)
    req = replace(req, env={"B": "override"})
    ex = executor.start(req)
    events(ex)
    assert executor.logs(ex.handle) == "job-override\n"
    assert ex.handle["log"].endswith("-2.log")


def test_it_refuses_a_command_that_cannot_start(executor) -> None:
    with pytest.raises(ExecutorError, match="no command"):
        executor.start(RunRequest("r1", JobSpec(name="x", id=1), datetime.now(UTC)))


def test_it_fails_with_127_when_the_program_does_not_exist(executor) -> None:
    got = events(executor.start(request("/nonexistent/program")))
    assert (got[-1].kind, got[-1].exit_code) == (FAILED, 127)


def test_it_kills_with_sigterm(executor) -> None:
    ex = executor.start(request("sleep", "30"))
    gevent.sleep(0.1)
    executor.kill(ex, "cancelled: test")
    got = events(ex)
    assert (got[-1].kind, got[-1].reason) == (KILLED, "cancelled: test")
    assert got[-1].exit_code == 128 + signal.SIGTERM


def test_it_kills_with_sigkill_after_the_grace_period(executor) -> None:
    ex = executor.start(request("sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30"))
    gevent.sleep(0.2)
    executor.kill(ex, "stubborn", grace_seconds=0.3)
    got = events(ex)
    assert got[-1].kind == KILLED
    assert proc_start_time(ex.handle["pid"]) is None


def test_it_adopts_a_process_after_a_restart_and_reads_its_exit_code(tmp_path, executor) -> None:
    req = request("sh", "-c", "sleep 0.5; exit 4")
    ex = executor.start(req)
    executor.close()  # "restart": the process keeps running, nobody waits for it
    later = LocalExecutor(replace(configmod.load(None, {}), log_dir=str(tmp_path)), RealClock())
    adopted = later.adopt(req, ex.handle)
    assert adopted is not None
    got = events(adopted)
    assert (got[-1].kind, got[-1].exit_code) == (FAILED, 4)
    os.waitpid(ex.handle["pid"], 0)  # reap: in a real restart init does this


def test_it_does_not_adopt_a_reused_pid(executor) -> None:
    handle = {"pid": os.getpid(), "log": "/nonexistent/x.log", "proc_start": 1}
    assert executor.adopt(request("true"), handle) is None


def test_it_reports_lost_when_an_adopted_process_dies_without_an_exit_file(executor) -> None:
    ex = executor.start(request("sleep", "30"))
    executor.close()
    later_handle = dict(ex.handle)
    adopted = executor.adopt(request("sleep", "30"), later_handle)
    os.killpg(ex.handle["pid"], signal.SIGKILL)
    os.waitpid(ex.handle["pid"], 0)
    got = events(adopted)
    assert got[-1].kind == LOST
