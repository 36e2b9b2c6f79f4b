"""Real Itinerary processes on one database, for the replica and failover tests.

Each `Replica` is `python itinerary.py` with its own port and log file; they share
one local-executor log folder (as replicas on one machine would), so a new leader
can adopt the processes its predecessor started. Workloads made by `effect_job`
append one line per run to a file of their own: "<replica> <unix time> <tag>", the
side effects the tests count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import requests

from tests.conftest import ROOT


class Replica:
    def __init__(self, name: str, dsn: str, workdir: Path, **env: str) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")}
        full.update(
            ITINERARY_DB_DSN=dsn,
            ITINERARY_PORT="0",
            ITINERARY_LOG_DIR=str(workdir / "logs"),
            ITINERARY_SHUTDOWN_TIMEOUT="5s",
            REPLICA=name,
            **env,
        )
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "itinerary.py")],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=full,
                cwd=workdir,
            )
        self.url = ""

    def wait_serving(self, timeout: float = 30) -> Replica:
        with gevent.Timeout(timeout, AssertionError(f"{self.name} did not start: {self.text()}")):
            line = self.proc.stdout.readline()
        assert "running at" in line, self.text()
        self.url = line.split("running at ")[1].split()[0]
        return self

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, body: Any = None) -> requests.Response:
        return requests.post(self.url + path, json=body or {}, timeout=15)

    def leads(self) -> bool:
        try:
            return self.get("/leaderz").status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def term(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def start(
    names: list[str], dsn: str, workdir: Path, lead: bool = True, **env: str
) -> list[Replica]:
    """Start the replicas one after the other (the first becomes the leader if `lead`)."""
    replicas: list[Replica] = []
    try:
        for name in names:
            replicas.append(Replica(name, dsn, workdir, **env))
            replicas[-1].wait_serving()
            if len(replicas) == 1 and lead:
                wait_for(lambda: replicas[0].leads(), 30, "the first replica to lead")
    except BaseException:
        stop(replicas)  # none is left behind when start-up fails
        raise
    return replicas


def stop(replicas: list[Replica]) -> None:
    for replica in replicas:
        replica.kill()


def wait_for(predicate: Any, timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def leader_of(replicas: list[Replica]) -> Replica | None:
    leading = [r for r in replicas if r.proc.poll() is None and r.leads()]
    assert len(leading) <= 1, [r.name for r in leading]
    return leading[0] if leading else None


def effect_job(name: str, effects: Path, **fields: Any) -> dict[str, Any]:
    """A job whose every run appends "<replica> <time> <tag>" to effects/<name>."""
    script = f'echo "$REPLICA $(date +%s.%N) $0" >> {effects / name}'
    return {
        "name": name,
        "commands": [["sh", "-c", script]],
        "args": ["scheduled"],
        "manuallyRunnable": True,
        "manualRunModifiableFields": ["args"],
        **fields,
    }


def effects_of(path: Path) -> list[tuple[str, float, str]]:
    """(replica, unix time, tag) of every run of one job so far."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        replica, at, tag = line.split(" ", 2)
        out.append((replica, float(at), tag))
    return out
