"""The local executor: runs a job's command as a process on this machine.

The embedded default when no Kubernetes configuration is given. An attempt runs
`commands[0] + args` with `os.environ + job.env + overrides`, in its own process
group, output (stdout and stderr) to `log_dir/<job>/<run_id>-<attempt>.log`.

The command runs under a tiny `/bin/sh` wrapper that writes its exit status to
`<log>.exit` when it ends, so a process adopted after a restart (no longer our
child, so `waitpid` cannot see it) still reports its real exit code. The
handle records the wrapper's pid and its start time from `/proc/<pid>/stat`,
so a pid reused by an unrelated process is never mistaken for ours.

The attempt's log file is its fence: `start` creates it with O_EXCL (and fsyncs it and
its folder) before it spawns anything, so an attempt whose log exists was started once
already, even if that start never reached the database (the RUNNING record goes
through the syncer after the start pass, so `kill -9` just after a start leaves the
run `scheduled`). Starting it again adopts instead of spawning: the exit file gives
the real final state, a live wrapper (found by its command line, which names the exit
file) is followed, and with neither the attempt is `lost` with the reason. So does
`adopt` when the run row has no handle. Never twice, at the price of a `lost` when the
kill came between the marker and the spawn.

Killing sends SIGTERM to the process group, then SIGKILL after the grace period.
The wrapper traps SIGTERM (with a handler, not "ignore", which the command would
inherit) so it outlives the command and records its status.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import gevent
from gevent import subprocess

from itinerary.clock import Clock
from itinerary.config import Config
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
    context_env,
)

# $0 is the exit file; the command follows as "$@".
WRAPPER = 'trap : TERM INT; "$@"; s=$?; echo "$s" > "$0.tmp" && mv "$0.tmp" "$0"; exit "$s"'
# How often an adopted process (not our child) is checked for having ended.
ADOPT_POLL_SECONDS = 0.5
# How long one scan of /proc for wrappers answers for (recovery adopts many runs at once).
SCAN_TTL_SECONDS = 1.0
NEITHER = (
    "its attempt was started before the restart (its log file exists) but neither its "
    "process nor its exit status can be found; not started a second time"
)


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has finished already
        return None
    return int(fields[19])


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _wrappers() -> dict[str, tuple[int, int | None]]:
    """Live wrappers on this machine: exit file path -> (pid, start time).

    A wrapper's shell forks to run the command (and `mv`): until the child execs, it shows
    the wrapper's command line too. The wrapper is the one whose parent is not a match.
    """
    matches: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 3 and argv[1] == b"-c" and argv[2] == WRAPPER.encode():
            matches[int(entry.name)] = os.fsdecode(argv[3])
    return {
        path: (pid, proc_start_time(pid))
        for pid, path in matches.items()
        if _parent(pid) not in matches
    }


def _create_marker(path: Path) -> int | OSError | None:
    """Create the attempt's log file, durable before anything runs: its fd, None when it
    exists already, or the error (returned, not raised: it runs in a worker thread, whose
    pool would print every exception as a crash)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o644)
    except FileExistsError:
        return None
    except OSError as exc:
        return exc
    try:
        os.fsync(fd)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError as exc:
        os.close(fd)
        return exc
    return fd


def _describe(code: int) -> str | None:
    if code == 0:
        return None
    if code > 128:
        return f"exit code {code} (signal {code - 128})"
    return f"exit code {code}"


class _Attempt:
    """What the executor keeps about one live attempt."""

    def __init__(self, execution: Execution, pid: int) -> None:
        self.execution = execution
        self.pid = pid
        self.kill_reason: str | None = None


class LocalExecutor:
    name = "local"

    def __init__(self, config: Config, clock: Clock) -> None:
        self.log_dir = Path(config.log_dir)
        self.kill_grace = config.kill_grace_period
        self.clock = clock
        self._live: dict[tuple[str, int], _Attempt] = {}
        self._watchers: list[gevent.Greenlet] = []
        self._scan: tuple[float, dict[str, tuple[int, int | None]]] | None = None

    def _log_path(self, request: RunRequest) -> Path:
        return self.log_dir / request.job.name / f"{request.run_id}-{request.attempt}.log"

    def start(self, request: RunRequest) -> Execution:
        key = (request.run_id, request.attempt)
        if key in self._live:
            return self._live[key].execution
        if not request.job.commands:
            raise ExecutorError(f"job {request.job.name!r} has no command to run locally")
        log_path = self._log_path(request)
        argv = [*request.job.commands[0], *request.args]
        env = {**os.environ, **request.job.env, **request.env, **context_env(request)}
        # In a worker thread: an fsync on a busy disk can take tens of milliseconds, which
        # on the hub would hold up the loop and every other start.
        fd = gevent.get_hub().threadpool.apply(_create_marker, (log_path,))
        if fd is None:  # started once already, by this process or an earlier one
            return self._adopt_marker(request, log_path)
        if isinstance(fd, OSError):
            raise ExecutorError(f"cannot create the log file {str(log_path)!r}: {fd}")
        try:
            with open(fd, "ab") as out:
                proc = subprocess.Popen(
                    ["/bin/sh", "-c", WRAPPER, f"{log_path}.exit", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            raise ExecutorError(f"could not start {argv[0]!r}: {exc}") from exc
        handle = {
            "pid": proc.pid,
            "log": str(log_path),
            "started": self.clock.now().isoformat(),
            "proc_start": proc_start_time(proc.pid),
        }
        execution = Execution(request.run_id, request.attempt, handle)
        attempt = self._live[key] = _Attempt(execution, proc.pid)
        now = self.clock.now()
        execution.events.put(ExecEvent(STARTED, now, handle=handle))
        execution.events.put(ExecEvent(RUNNING, now))
        self._watch(self._wait_child, key, attempt, proc)
        return execution

    def adopt(self, request: RunRequest, handle: dict[str, Any]) -> Execution | None:
        """Follow a process an earlier Itinerary started, if it (or its exit file) is there."""
        pid, log_path = handle.get("pid"), handle.get("log")
        if not handle:  # the start may not have been recorded: look for its marker
            marker = self._log_path(request)
            return self._adopt_marker(request, marker) if marker.exists() else None
        if not isinstance(pid, int) or not isinstance(log_path, str):
            return None
        key = (request.run_id, request.attempt)
        execution = Execution(request.run_id, request.attempt, dict(handle))
        alive = (
            handle.get("proc_start") is not None and proc_start_time(pid) == handle["proc_start"]
        )
        code = self._exit_code(log_path)
        if not alive and code is None:
            return None
        attempt = self._live[key] = _Attempt(execution, pid)
        execution.events.put(ExecEvent(RUNNING, self.clock.now(), handle=dict(handle)))
        self._watch(self._poll_adopted, key, attempt, handle)
        return execution

    def _adopt_marker(self, request: RunRequest, log_path: Path) -> Execution:
        """An attempt whose log exists: adopt what it left, never start it again."""
        key = (request.run_id, request.attempt)
        if key in self._live:
            return self._live[key].execution
        now = self.clock.now()
        handle: dict[str, Any] = {"log": str(log_path)}
        code = self._exit_code(str(log_path))
        found = None if code is not None else self._wrapper(f"{log_path}.exit")
        if code is None and found is None:  # it may have ended between the two looks
            code = self._exit_code(str(log_path))
        if found is not None:
            handle.update(pid=found[0], proc_start=found[1])
        execution = Execution(request.run_id, request.attempt, handle)
        if code is None and found is None:
            execution.events.put(ExecEvent(LOST, now, reason=NEITHER))
            return execution
        execution.events.put(ExecEvent(STARTED, now, handle=dict(handle)))
        execution.events.put(ExecEvent(RUNNING, now, handle=dict(handle)))
        attempt = _Attempt(execution, found[0] if found else 0)
        if code is not None:
            self._ended(key, attempt, code)
            return execution
        self._live[key] = attempt
        self._watch(self._poll_adopted, key, attempt, handle)
        return execution

    def _wrapper(self, exit_path: str) -> tuple[int, int | None] | None:
        """The live wrapper writing `exit_path`, from a scan of /proc at most a second old."""
        now = self.clock.monotonic()
        if self._scan is None or now - self._scan[0] > SCAN_TTL_SECONDS:
            self._scan = (now, _wrappers())
        found = self._scan[1].get(exit_path)
        if found is not None and found[1] is not None and proc_start_time(found[0]) == found[1]:
            return found
        return None

    def _watch(self, fn: Any, *args: Any) -> None:
        self._watchers = [g for g in self._watchers if not g.dead]
        self._watchers.append(gevent.spawn(fn, *args))

    def _wait_child(self, key: tuple[str, int], attempt: _Attempt, proc: Any) -> None:
        code = proc.wait()
        self._ended(key, attempt, code if code >= 0 else 128 - code)

    def _poll_adopted(self, key: tuple[str, int], attempt: _Attempt, handle: dict) -> None:
        while proc_start_time(attempt.pid) == handle.get("proc_start"):
            self.clock.sleep(ADOPT_POLL_SECONDS)
        code = self._exit_code(handle["log"])
        if code is None:
            self._live.pop(key, None)
            reason = "the process ended without recording an exit code (killed with SIGKILL?)"
            if attempt.kill_reason is not None:
                attempt.execution.events.put(
                    ExecEvent(KILLED, self.clock.now(), reason=attempt.kill_reason)
                )
            else:
                attempt.execution.events.put(ExecEvent(LOST, self.clock.now(), reason=reason))
            return
        self._ended(key, attempt, code)

    @staticmethod
    def _exit_code(log_path: str) -> int | None:
        try:
            return int(Path(f"{log_path}.exit").read_text().strip())
        except (OSError, ValueError):
            return None

    def _ended(self, key: tuple[str, int], attempt: _Attempt, code: int) -> None:
        self._live.pop(key, None)
        now = self.clock.now()
        if attempt.kill_reason is not None:
            event = ExecEvent(KILLED, now, exit_code=code, reason=attempt.kill_reason)
        elif code == 0:
            event = ExecEvent(SUCCEEDED, now, exit_code=0)
        else:
            event = ExecEvent(FAILED, now, exit_code=code, reason=_describe(code))
        attempt.execution.events.put(event)

    def kill(self, execution: Execution, reason: str, grace_seconds: float | None = None) -> None:
        attempt = self._live.get((execution.run_id, execution.attempt))
        if attempt is None or attempt.kill_reason is not None:
            return
        attempt.kill_reason = reason
        if self._signal(attempt.pid, signal.SIGTERM):
            grace = self.kill_grace if grace_seconds is None else grace_seconds
            self._watch(self._hard_kill, attempt, grace)

    def _hard_kill(self, attempt: _Attempt, grace: float) -> None:
        self.clock.sleep(grace)
        if (attempt.execution.run_id, attempt.execution.attempt) in self._live:
            self._signal(attempt.pid, signal.SIGKILL)

    @staticmethod
    def _signal(pgid: int, sig: signal.Signals) -> bool:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        return True

    def logs(self, handle: dict[str, Any], tail_lines: int | None = None) -> str:
        path = handle.get("log")
        if not path:
            return ""
        with contextlib.suppress(FileNotFoundError), open(path, errors="replace") as f:
            text = f.read()
            if tail_lines is None:
                return text
            return "".join(text.splitlines(keepends=True)[-tail_lines:])
        return ""

    def close(self) -> None:
        """Stop watching; the processes keep running and a later start adopts them."""
        for greenlet in self._watchers:
            greenlet.kill(block=False)
        self._watchers.clear()
