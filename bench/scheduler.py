"""Benchmark the scheduler loop: start lateness, loop iteration time, index rebuild, CPU, RSS.

Usage: python bench/scheduler.py --jobs N [--minutes M] [--every-minute]
       [--hooks N [--hook-latency 200ms]] [--db DSN]

Runs the real loop and orchestrators on the real clock with the instant executor
(every attempt succeeds as it starts). Lateness is taken by the executor itself:
`clock.now()` at the moment `executor.start` is called, minus the slot's scheduled
time, for every run whose slot fell due after the benchmark began. Loop iteration
time is measured around the whole `tick`. Without `--db` the syncer is a stand-in
that acknowledges every claim at once (the syncer's own throughput is benchmarked
separately); its presence is stated in the output. With `--db DSN` (a server as in
bench/api.py, or sqlite:///ignored) a fresh database is made and migrated, the jobs
are stored in it, and every claim and run update goes through the real syncer to it,
so a run starts only once its claim is in the database: the lateness a user sees.

Jobs are a mix of schedules: 40% every minute, 30% every 5 minutes, 20% hourly
(spread over the hour), 10% weekday mornings in four timezones; `--every-minute` makes
every job run every minute (the issue's lateness target). A run crosses a 5-minute
boundary (the realistic mix's biggest burst) only if it lasts long enough: `began`
says when it started.
With `--hooks N` the first N jobs have a preRunHook on a loopback HTTP server (a
process of its own) that answers 200 after `--hook-latency`; lateness is then also reported for
the jobs with and without hooks separately (a hooked run's start includes its hook), and per
instant when its first hook call began, against its last start of a job without a hook.
`lateness_cpu` counts, within each instant's starts, only this process's CPU time (the
wall lateness less what other processes took of the cores meanwhile): on a shared machine it
tells the pass's own cost from the load. One JSON line per run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gevent import monkey

monkey.patch_all()

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))  # bench/api.py's database helpers

import gevent  # noqa: E402
from gevent.queue import Queue  # noqa: E402

from itinerary import config as configmod  # noqa: E402
from itinerary.clock import RealClock  # noqa: E402
from itinerary.durations import parse_duration  # noqa: E402
from itinerary.executors.base import Execution, RunRequest  # noqa: E402
from itinerary.executors.instant import InstantExecutor  # noqa: E402
from itinerary.index import IndexBuilder  # noqa: E402
from itinerary.jobs import JobSpec  # noqa: E402
from itinerary.messages import ClaimSlot, Queues, RunCompleted, ShutDown  # noqa: E402
from itinerary.orchestrator import hooks as hookmod  # noqa: E402
from itinerary.scheduler import Scheduler  # noqa: E402

ZONES = ("UTC", "America/New_York", "Europe/London", "Asia/Tokyo")


# The loopback hook, in a process of its own (a real hook's server is not Itinerary's CPU).
HOOK_SERVER = """
import sys
from gevent import monkey; monkey.patch_all()
import gevent
from gevent.pywsgi import WSGIServer
latency = float(sys.argv[1])
def app(environ, start_response):
    environ["wsgi.input"].read()
    gevent.sleep(latency)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
server = WSGIServer(("127.0.0.1", 0), app, log=None, backlog=4096)
server.start()
print(server.server_port, flush=True)
server.serve_forever()
"""


def hook_server(latency: float) -> tuple[subprocess.Popen, str]:
    """A loopback preRunHook answering 200 after `latency` seconds, in its own process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOOK_SERVER, str(latency)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/hook"


def make_jobs(count: int, every_minute: bool, hooks: int = 0, url: str = "") -> list[JobSpec]:
    jobs = []
    for i in range(count):
        bucket = 0 if every_minute else i % 10
        if bucket < 4:
            schedule, tz = "* * * * *", "UTC"
        elif bucket < 7:
            schedule, tz = "*/5 * * * *", "UTC"
        elif bucket < 9:
            schedule, tz = f"{i % 60} * * * *", "UTC"
        else:
            schedule, tz = f"{i % 60} {6 + i % 4} * * 1-5", ZONES[i % len(ZONES)]
        constraints = {"preRunHook": {"url": url, "timeout": "30s"}} if i < hooks else {}
        jobs.append(
            JobSpec(
                name=f"j{i}",
                id=i + 1,
                schedule=schedule,
                timezone=tz,
                commands=(("true",),),
                constraints=constraints,
            )
        )
    return jobs


class TimedExecutor(InstantExecutor):
    """The instant executor, noting (scheduled time, now) the moment `start` is called.

    For jobs without hooks also the thread's CPU time then, and the moment each instant's
    first hook call began (the hook module's `call`, wrapped while the benchmark runs).
    """

    def __init__(self, clock: RealClock) -> None:
        super().__init__(clock)
        self.starts: list[tuple[datetime, datetime]] = []
        self.start_cpu: list[float] = []
        self.hooked_starts: list[tuple[datetime, datetime]] = []
        self.first_hook: dict[str, datetime] = {}  # scheduledAt as the hook's body says it
        self._call = hookmod.call
        hookmod.call = self._hook_call  # type: ignore[assignment]

    def start(self, request: RunRequest) -> Execution:
        if "preRunHook" in request.job.constraints:
            self.hooked_starts.append((request.scheduled_at, self.clock.now()))
        else:
            self.starts.append((request.scheduled_at, self.clock.now()))
            self.start_cpu.append(time.thread_time())
        return super().start(request)

    def _hook_call(self, config: dict[str, Any], body: dict[str, Any], pause: Any) -> Any:
        self.first_hook.setdefault(body["scheduledAt"], self.clock.now())
        return self._call(config, body, pause)

    def close(self) -> None:
        hookmod.call = self._call  # type: ignore[assignment]

    def instants(self, began: datetime) -> tuple[list[float], list[dict[str, Any]]]:
        """Lateness in CPU terms of the jobs without hooks, and per instant what happened when.

        A start's CPU lateness: its instant's first start's lateness, plus the CPU time the
        process spent from that start to this one.
        """
        by_at: dict[datetime, list[tuple[datetime, float]]] = {}
        for (at, now), cpu in zip(self.starts, self.start_cpu, strict=True):
            if at >= began:
                by_at.setdefault(at, []).append((now, cpu))
        cpu_lateness: list[float] = []
        instants: list[dict[str, Any]] = []
        for at, starts in sorted(by_at.items()):
            (first, cpu0), (last, cpu1) = starts[0], starts[-1]
            lag = (first - at).total_seconds()
            cpu_lateness.extend(lag + cpu - cpu0 for _, cpu in starts)
            hook = self.first_hook.get(at.isoformat().replace("+00:00", "Z"))
            instants.append(
                {
                    "at": at.strftime("%H:%M"),
                    "runs": len(starts),
                    "first_ms": round(lag * 1000, 1),
                    "last_ms": round((last - at).total_seconds() * 1000, 1),
                    "pass_cpu_ms": round((cpu1 - cpu0) * 1000, 1),
                    "first_hook_ms": round((hook - at).total_seconds() * 1000, 1) if hook else None,
                }
            )
        return cpu_lateness, instants


class TimedScheduler(Scheduler):
    """The scheduler, with each whole loop iteration timed from outside."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ticks: list[float] = []
        self.tick_cpu: list[float] = []

    def tick(self, now: datetime) -> None:
        began, cpu = time.perf_counter(), time.thread_time()
        super().tick(now)
        self.ticks.append(time.perf_counter() - began)
        # The CPU the iteration got: below its wall time when other processes had the cores.
        self.tick_cpu.append(time.thread_time() - cpu)


class GcPauses:
    """Collector pauses, from gc.callbacks: they land on whatever is running."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._began = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._began)


class Store:
    """A fresh database holding the jobs, written by the real syncer (`--db`)."""

    def __init__(self, dsn: str, jobs: list[JobSpec], config: Any) -> None:
        from api import create_database  # bench/api.py

        from itinerary import jobstore
        from itinerary.db import Database, parse_dsn
        from itinerary.migrate import migrate
        from itinerary.models import Job, bind

        self.admin = dsn
        self.dsn, self.name = create_database(dsn)
        self.database = Database(parse_dsn(self.dsn))
        bind(self.database)
        migrate(self.database, Path(__file__).resolve().parent.parent / "migrations")
        now = RealClock().now() - timedelta(hours=1)
        rows = [
            {**jobstore._row_values(j, now), "id": j.id, "created_at": now, "active_name": j.name}
            for j in jobs
        ]

        def write() -> None:
            with self.database.writer.atomic():
                for i in range(0, len(rows), 500):
                    Job.insert_many(rows[i : i + 500]).execute(self.database.writer)

        self.database.write(write)
        self.config = config

    def syncer(self, queues: Queues, clock: RealClock) -> gevent.Greenlet:
        from itinerary.syncer import Syncer

        return gevent.spawn(
            Syncer(queues.syncer, self.database, clock, queues.stats, self.config).run
        )

    def runs(self) -> int:
        from itinerary.models import JobRun

        return self.database.read(lambda: JobRun.select().count())

    def close(self) -> None:
        from api import drop_database

        self.database.close()
        drop_database(self.admin, self.name)


def ack_claims(inbox: Queue) -> None:
    while True:
        msg = inbox.get()
        if isinstance(msg, ClaimSlot):
            msg.reply.set(True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def expected_slots(jobs: list[JobSpec], config: Any, began: datetime, until: datetime) -> int:
    """How many slots fall in `[began, until]`: every one of them should have started."""
    builder = IndexBuilder(0, (until - began).total_seconds() + 1)
    builder.set_jobs(jobs)
    index = builder.rebuild(began - timedelta(microseconds=1))
    return len(index.between(began - timedelta(microseconds=1), until))


def bench(
    count: int, minutes: float, every_minute: bool, hooks: int, latency: float, dsn: str | None
) -> dict:
    clock = RealClock()
    config = configmod.load(None, {})
    server, url = hook_server(latency) if hooks else (None, "")
    jobs = make_jobs(count, every_minute, hooks, url)
    store = Store(dsn, jobs, config) if dsn else None
    try:
        return _bench(clock, config, jobs, minutes, every_minute, hooks, latency, server, store)
    finally:
        if store is not None:
            store.close()


def _bench(clock, config, jobs, minutes, every_minute, hooks, latency, server, store) -> dict:  # type: ignore[no-untyped-def]  # noqa: E501
    count = len(jobs)
    # Index rebuild: a full build from scratch, then an incremental one a minute later.
    builder = IndexBuilder(config.grace_period, config.lookahead_window)
    builder.set_jobs(jobs)
    t = time.perf_counter()
    builder.rebuild(clock.now())
    full_build = time.perf_counter() - t
    t = time.perf_counter()
    builder.rebuild(clock.now() + timedelta(minutes=1))
    rebuild = time.perf_counter() - t
    del builder

    queues = Queues(Queue(), Queue(config.syncer_inbox_size), Queue(), Queue())
    syncer = store.syncer(queues, clock) if store else gevent.spawn(ack_claims, queues.syncer)
    executor = TimedExecutor(clock)
    scheduler = TimedScheduler(config, queues, clock, executor, None)
    scheduler.jobs = {j.id: j for j in jobs if j.id is not None}
    scheduler.builder.set_jobs(jobs)
    outcomes: dict[str, int] = {}

    def collect() -> None:
        while True:
            msg = queues.stats.get()
            if isinstance(msg, RunCompleted):
                outcomes[msg.status] = outcomes.get(msg.status, 0) + 1

    gevent.spawn(collect)
    rss_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gcs = GcPauses()
    began = clock.now()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    load0 = os.getloadavg()[0]
    loop = gevent.spawn(scheduler.run)
    gevent.sleep(minutes * 60)
    stopped = clock.now()
    scheduler.stop()
    loop.join(timeout=60)
    if store is not None:  # everything written: how many run rows the database holds
        queues.syncer.put(ShutDown())
        syncer.join(timeout=120)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    gevent.sleep(0.1)
    # Slots due in the last second may be released by the shutdown instead of started.
    until = stopped - timedelta(seconds=1)
    # Slots due before the benchmark began are near-misses of its start, not lateness.
    lateness = [(now - at).total_seconds() for at, now in executor.starts if at >= began]
    hooked = [(now - at).total_seconds() for at, now in executor.hooked_starts if at >= began]
    cpu_lateness, instants = executor.instants(began)
    executor.close()
    every = executor.starts + executor.hooked_starts
    started = sum(1 for at, _ in every if began <= at <= until)
    expected = expected_slots(jobs, config, began, until)
    loops = scheduler.ticks
    if server is not None:
        server.kill()
    hook_figures = {}
    if hooks:
        hook_figures = {
            "hooks": hooks,
            "hook_latency_ms": round(latency * 1000, 1),
            "hooked_runs": len(hooked),
            "hooked_lateness_p50_ms": round(percentile(hooked, 50) * 1000, 2),
            "hooked_lateness_p99_ms": round(percentile(hooked, 99) * 1000, 2),
            "hooked_lateness_max_ms": round(max(hooked, default=0.0) * 1000, 2),
            "lateness": "of the jobs without hooks; hooked_lateness includes the hook's answer",
        }
    return {
        "jobs": count,
        "mix": "every minute" if every_minute else "realistic",
        "minutes": minutes,
        "began": began.strftime("%H:%M:%S"),
        "runs": len(lateness),
        "not_started": expected - started,
        "succeeded": outcomes.get("succeeded", 0),
        "lateness_p50_ms": round(percentile(lateness, 50) * 1000, 2),
        "lateness_p99_ms": round(percentile(lateness, 99) * 1000, 2),
        "lateness_max_ms": round(max(lateness, default=0.0) * 1000, 2),
        "lateness_cpu_p50_ms": round(percentile(cpu_lateness, 50) * 1000, 2),
        "lateness_cpu_p99_ms": round(percentile(cpu_lateness, 99) * 1000, 2),
        "instants": instants,
        "loop_p50_ms": round(percentile(loops, 50) * 1000, 2),
        "loop_p99_ms": round(percentile(loops, 99) * 1000, 2),
        "loop_max_ms": round(max(loops, default=0.0) * 1000, 2),
        "loop_cpu_p99_ms": round(percentile(scheduler.tick_cpu, 99) * 1000, 2),
        "iterations": len(loops),
        "gc_max_ms": round(max(gcs.pauses, default=0.0) * 1000, 2),
        "rebuild_s": round(rebuild, 3),
        "full_build_s": round(full_build, 3),
        "cpu_share": round(cpu / wall, 3),
        "load_avg": [round(load0, 2), round(os.getloadavg()[0], 2)],  # the machine's, not ours
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_ready_mb": round(rss_ready, 1),
        "executor": "instant",
        "syncer": "real, to a fresh database" if store else "stand-in acknowledging claims at once",
        "db": store.database.driver if store else None,
        "run_rows": store.runs() if store else None,
        **hook_figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--every-minute", action="store_true", help="all jobs run every minute")
    parser.add_argument("--hooks", type=int, default=0, help="jobs with a loopback preRunHook")
    parser.add_argument("--hook-latency", default="200ms", help="how long the hook takes to answer")
    parser.add_argument("--db", help="claims and runs through the real syncer to this database")
    args = parser.parse_args()
    latency = parse_duration(args.hook_latency)
    figures = bench(args.jobs, args.minutes, args.every_minute, args.hooks, latency, args.db)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
