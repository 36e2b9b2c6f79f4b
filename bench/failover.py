"""Benchmark: leader failover between replicas under load (issue 14).

Usage: python bench/failover.py [--dsn DSN] [--replicas 3] [--jobs 200] [--kills 10]
       [--every 30] [--seed N]

DSN names a PostgreSQL (or MariaDB) server; a fresh database is created and dropped at
the end. `--replicas` real `itinerary.py` processes (local executor, one shared log
folder, as on one machine) serve it; `--jobs` every-minute jobs (catchUp on, window 5m)
each append "<replica> <unix time>" to a file of their own per run. Every `--every`
seconds on average (uniformly 0.5x-1.5x) the leader is killed with SIGKILL at a random
moment, and restarted at once as a standby. Failover is the time from the kill to
another replica answering 200 on /leaderz. After the last kill the run goes on to the
end of the next full minute, then every (job, minute) from the first full minute on is
checked: `duplicated` slots ran more than once, `lost` slots never ran. `late_p99_s`
is the start lateness of the slots due between a kill and the takeover;
`stepped_down_unkilled` counts leaders that stepped down without being killed (restarted,
as a supervisor would). One JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from itinerary.db import parse_dsn  # noqa: E402

sys.path.insert(1, str(Path(__file__).resolve().parent))
import dbadmin  # noqa: E402


class Replica:
    def __init__(self, name: str, dsn: str, workdir: Path) -> None:
        self.name, self.dsn, self.workdir = name, dsn, workdir
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")}
        env.update(
            ITINERARY_DB_DSN=self.dsn,
            ITINERARY_PORT="0",
            ITINERARY_LOG_DIR=str(self.workdir / "logs"),
            ITINERARY_SHUTDOWN_TIMEOUT="5s",
            REPLICA=self.name,
        )
        with open(self.workdir / f"{self.name}.log", "a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "itinerary.py")],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
                cwd=self.workdir,
            )
        line = self.proc.stdout.readline()
        if "running at" not in line:
            raise SystemExit(f"replica {self.name} did not start; see {self.workdir}")
        self.url = line.split("running at ")[1].split()[0]

    def leads(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            return requests.get(self.url + "/leaderz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def _leader(replicas: list[Replica], timeout: float) -> Replica | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for replica in replicas:
            if replica.leads():
                return replica
        time.sleep(0.05)
    return None


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--every", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    admin = parse_dsn(args.dsn)
    name = f"itinerary_failover_{secrets.token_hex(4)}"
    scheme = "postgresql" if admin.driver == "postgres" else "mysql"
    auth = admin.user + (f":{admin.password}" if admin.password else "")
    port = admin.port or (5432 if admin.driver == "postgres" else 3306)
    dsn = f"{scheme}://{auth}@{admin.host}:{port}/{name}"
    dbadmin.admin(args.dsn, f"CREATE DATABASE {name}")
    workdir = Path(tempfile.mkdtemp(prefix="itinerary-failover-"))
    effects = workdir / "effects"
    effects.mkdir()
    replicas = [Replica(chr(ord("a") + i), dsn, workdir) for i in range(args.replicas)]
    try:
        for replica in replicas:
            replica.start()
            if replica is replicas[0] and _leader(replicas[:1], 30) is None:
                raise SystemExit("the first replica did not lead")
        script = 'echo "$REPLICA $(date +%s.%N)" >> ' + str(effects) + "/$0"

        def create(i: int) -> int:
            body = {
                "name": f"j{i}",
                "schedule": "* * * * *",
                "commands": [["sh", "-c", script]],
                "args": [f"j{i}"],
                "constraints": {"catchUp": True, "catchUpWindow": "5m"},
            }
            url = replicas[-1].url + "/api/v1/jobs"
            return requests.post(url, json=body, timeout=30).status_code

        with ThreadPoolExecutor(20) as pool:
            assert set(pool.map(create, range(args.jobs))) == {201}
        first_minute = int(time.time() // 60) + 1
        failovers: list[float] = []
        windows: list[tuple[float, float]] = []
        stepped_down = 0
        for _ in range(args.kills):
            time.sleep(args.every * rng.uniform(0.5, 1.5))
            for replica in replicas:  # a supervisor restarts a replica that stepped down
                if replica.proc is not None and replica.proc.poll() is not None:
                    stepped_down += 1
                    replica.start()
            leader = _leader(replicas, 30)
            if leader is None:
                raise SystemExit("no leader")
            killed_at = time.time()
            leader.kill()
            others = [r for r in replicas if r is not leader]
            new = _leader(others, 60)
            took = time.time()
            if new is None:
                raise SystemExit("no replica took over within 60 s")
            failovers.append(took - killed_at)
            windows.append((killed_at, took))
            leader.start()  # back as a standby
        last_minute = int(time.time() // 60)
        time.sleep(max(0.0, (last_minute + 1) * 60 + 20 - time.time()))
        duplicated = lost = 0
        late: list[float] = []
        for i in range(args.jobs):
            path = effects / f"j{i}"
            lines = path.read_text().split("\n") if path.exists() else []
            times = [float(line.split()[1]) for line in lines if line.strip()]
            by_minute: dict[int, list[float]] = {}
            for at in times:
                by_minute.setdefault(int(at // 60), []).append(at)
            for minute in range(first_minute, last_minute + 1):
                ran = by_minute.get(minute, [])
                duplicated += max(0, len(ran) - 1)
                lost += 0 if ran else 1
                due = minute * 60
                if ran and any(k <= due <= t for k, t in windows):
                    late.append(min(ran) - due)
        print(
            json.dumps(
                {
                    "replicas": args.replicas,
                    "jobs": args.jobs,
                    "kills": len(failovers),
                    "slots": args.jobs * (last_minute - first_minute + 1),
                    "failover_p50_s": round(statistics.median(failovers), 2),
                    "failover_max_s": round(max(failovers), 2),
                    "duplicated": duplicated,
                    "lost": lost,
                    "slots_due_in_failover": len(late),
                    "late_p99_s": round(_pct(late, 0.99), 2),
                    "stepped_down_unkilled": stepped_down,
                }
            ),
            flush=True,
        )
    finally:
        for replica in replicas:
            replica.kill()
        try:
            dbadmin.admin(
                args.dsn,
                f"DROP DATABASE IF EXISTS {name}"
                + (" WITH (FORCE)" if admin.driver == "postgres" else ""),
            )
        except Exception as exc:  # the figures are printed already
            print(f"could not drop {name}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
