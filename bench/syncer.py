"""Syncer throughput: sustained ClaimSlot + RunUpdate messages per second, written durably,
with a ticker greenlet standing in for the scheduler loop to measure how late it wakes.

    python bench/syncer.py --db sqlite|postgres|mysql [--dsn DSN] [--seconds S]
                           [--senders N] [--rate R] [--holds]

Without --dsn it creates a scratch database (a temp file, or a database on the local
server) and drops it afterwards.

The load comes the way orchestrators make it: `--senders` greenlets, each one run at a
time, which claims its slot, waits for the claim's acknowledgement (as an orchestrator
does before it starts anything), then sends four updates, yielding after each (in the
product every update is a separate event in the orchestrator's life). No sender holds
the hub longer than it takes to build and queue one message. Without --rate they send as
fast as the syncer takes it (its top rate, where every queue is full and the loop's
lateness is that of a saturated process); with --rate R they offer R messages a second
between them, each on its own timetable (the loop's lateness at that load).

Prints one JSON line:
- db, senders, offered_per_s (--rate or null);
- updates_per_s: messages made durable per second, claims included, counted from the
  first send to the final Flush's reply; runs_per_s: runs whose five messages (claim,
  starting, running, succeeded, a late detail) were all sent;
- loop_p50_ms, loop_p99_ms, loop_max_ms: how much later than asked a 10 ms ticker woke;
- late_ticks: the wake-ups over 5 ms late by cause (gc, preempted, gil, busy; see Ticker);
- claim_ack_p99_ms: claim sent to acknowledged;
- gc: per generation, collections, the longest pause and all pauses together (ms);
- cpu_share: this process's CPU time over the wall time (near 1.0: CPU-bound);
- load_avg: the machine's 1-minute load average at the end, to judge how shared it was;
- poison, refused (claims not answered True), lost (runs all sent but not in their final
  state at the end): all must be 0;
- with --holds, holds_ms: how long the writer, the reader, the senders, the ticker and the
  hub ran between two switches, p99 and max in wall time (preemption and garbage
  collection included) and in CPU time less garbage collection, and how many ran over 5 ms.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import greenlet  # noqa: E402
from gevent.hub import Hub  # noqa: E402
from gevent.queue import Queue  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from itinerary import config as configmod  # noqa: E402
from itinerary import db as dbmod  # noqa: E402
from itinerary import (  # noqa: E402
    gcpolicy,
    jobstore,
    messages,
    models,  # noqa: E402
)
from itinerary.clock import RealClock  # noqa: E402
from itinerary.jobs import parse_job  # noqa: E402
from itinerary.migrate import migrate  # noqa: E402
from itinerary.syncer import Syncer  # noqa: E402

ADMIN = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/mysql",
}
TICK = 0.01  # the ticker's interval (seconds)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def admin(driver: str, sql: str) -> None:
    d = dbmod.parse_dsn(ADMIN[driver])
    if driver == "postgres":
        import psycopg2

        conn = psycopg2.connect(host=d.host, port=d.port, user=d.user, dbname=d.database)
        conn.autocommit = True
    else:
        import pymysql

        conn = pymysql.connect(host=d.host, port=d.port, user=d.user, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def scratch(driver: str) -> tuple[str, str | None]:
    """A new empty database: (DSN, name to drop afterwards)."""
    if driver == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db", None
    name = f"itinerary_bench_{secrets.token_hex(4)}"
    admin(driver, f"CREATE DATABASE {name}")
    base = ADMIN[driver].rsplit("/", 1)[0]
    return f"{base}/{name}", name


@dataclass
class Load:
    """What the senders did, shared by all of them."""

    numbers: Iterator[int] = field(default_factory=itertools.count)
    interval: float = 0.0  # seconds between one sender's messages; 0: as fast as it can
    stopping: bool = False
    messages: int = 0  # messages sent
    runs: int = 0  # runs whose five messages were all sent
    refused: int = 0  # claims not answered True
    claim_waits: list[float] = field(default_factory=list)


def sender(inbox: Queue, job_id: int, load: Load) -> None:
    """One orchestrator's worth of traffic, one run after another. Paced (--rate), it
    keeps to its own timetable, catching up at once when it has fallen behind. It stops
    at the next message once the time is up, maybe halfway through a run."""
    due = time.perf_counter() + random.uniform(0, load.interval)

    def pace() -> None:
        nonlocal due
        due += load.interval
        gevent.sleep(max(0.0, due - time.perf_counter()))

    while not load.stopping:
        n = next(load.numbers)
        rid, at = f"rb{n:014d}", T0 + timedelta(seconds=n)
        claim = messages.ClaimSlot(rid, job_id, at, "schedule", "scheduled", at)
        sent = time.perf_counter()
        inbox.put(claim)
        load.messages += 1
        if claim.reply.get() is not True:
            load.refused += 1
            continue
        load.claim_waits.append(time.perf_counter() - sent)
        pace()
        second = timedelta(seconds=1)
        for update in (
            messages.RunUpdate(rid, at + second, status="starting", attempt=1),
            messages.RunUpdate(rid, at + 2 * second, status="running", started_at=at),
            messages.RunUpdate(rid, at + 3 * second, status="succeeded", exit_code=0),
            messages.RunUpdate(rid, at + 4 * second, completed_at=at, reason="ok"),
        ):
            if load.stopping:
                return
            inbox.put(update)
            load.messages += 1
            pace()
        load.runs += 1


class GcPauses:
    """Every garbage collection's duration, through gc.callbacks."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self.total = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._started
            self.pauses.append((info["generation"], pause))
            self.total += pause

    def summary(self) -> dict[str, list[float]]:
        """Per generation: how many collections, the longest, and all of them (ms)."""
        out: dict[str, list[float]] = {}
        for gen in sorted({g for g, _ in self.pauses}):
            times = [p for g, p in self.pauses if g == gen]
            out[f"gen{gen}"] = [len(times), round(max(times) * 1000, 1), round(sum(times) * 1000)]
        return out


class Ticker:
    """Stands in for the scheduler loop: asks to wake every TICK and notes how late each
    wake-up was. A wake-up more than 5 ms late is put down to what held it up most in the
    meantime: garbage collection ("gc"); this thread waiting for a CPU, taken by other
    processes such as the database server ("preempted", the kernel's run delay from
    /proc/thread-self/schedstat); other threads of the process running, i.e. SQLite's
    worker holding the GIL ("gil"); else this thread running our own code ("busy")."""

    def __init__(self, gc_pauses: GcPauses) -> None:
        self.gc = gc_pauses
        self.lateness: list[float] = []
        self.causes = {"gc": 0, "preempted": 0, "gil": 0, "busy": 0}

    def _now(self) -> tuple[float, float, float, float, float]:
        return (
            time.perf_counter(),
            time.thread_time(),
            time.process_time(),
            self.gc.total,
            _run_delay(),
        )

    def run(self, load: Load) -> None:
        last = self._now()
        while not load.stopping:
            gevent.sleep(TICK)
            now = self._now()
            wall, mine, process, in_gc, delayed = (a - b for a, b in zip(now, last, strict=True))
            late = max(0.0, wall - TICK)
            self.lateness.append(late)
            if late > 0.005:
                self.causes[self._cause(late, wall, mine, process - mine, in_gc, delayed)] += 1
            last = now

    @staticmethod
    def _cause(
        late: float, wall: float, mine: float, others: float, in_gc: float, delayed: float
    ) -> str:
        causes = {"gc": in_gc, "preempted": delayed, "gil": others, "busy": mine - in_gc}
        if causes["gc"] >= late / 2:
            return "gc"
        return max(("preempted", "gil", "busy"), key=causes.__getitem__)


def _run_delay() -> float:
    """Seconds this thread has waited, runnable, for a CPU (Linux); 0 where unknown."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except OSError:
        return 0.0


class Holds:
    """How long each greenlet ran before it switched away (greenlet.settrace), in wall
    time (what a waiting greenlet sees, preemption by other processes included) and in
    this thread's CPU time less garbage collection (what the code itself costs). The
    hub's wall time is mostly waiting for I/O; its CPU time is what the loop costs."""

    def __init__(self, names: dict[object, str], gc_pauses: GcPauses) -> None:
        self.names = names  # a greenlet, or the function a gevent.Greenlet runs, to its name
        self.gc = gc_pauses
        self.held: dict[str, list[tuple[float, float]]] = {}
        self.last = (time.perf_counter(), time.thread_time(), gc_pauses.total)

    def __call__(self, event: str, args: tuple) -> None:
        if event not in ("switch", "throw"):
            return
        now = (time.perf_counter(), time.thread_time(), self.gc.total)
        name = self.names.get(args[0]) or self._name(args[0])
        wall, cpu, in_gc = (a - b for a, b in zip(now, self.last, strict=True))
        self.held.setdefault(name, []).append((wall, cpu - in_gc))
        self.last = now

    def _name(self, g: greenlet.greenlet) -> str:
        name = "hub" if isinstance(g, Hub) else self.names.get(getattr(g, "_run", None), "senders")
        self.names[g] = name
        return name

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, pairs in sorted(self.held.items()):
            wall, cpu = [p[0] for p in pairs], [p[1] for p in pairs]
            out[name] = {
                "p99": round(percentile(wall, 0.99) * 1000, 2),
                "max": round(max(wall) * 1000, 2),
                "cpu_p99": round(percentile(cpu, 0.99) * 1000, 2),
                "cpu_max": round(max(cpu) * 1000, 2),
                "over_5ms": sum(w > 0.005 for w in wall),
            }
        return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def final_runs() -> int:
    return (
        models.JobRun.select()
        .where((models.JobRun.status == "succeeded") & (models.JobRun.reason == "ok"))
        .count()
    )


def bench(
    driver: str, dsn: str, seconds: float, senders: int, rate: float, trace_holds: bool
) -> dict:
    database = dbmod.Database(dbmod.parse_dsn(dsn))
    migrate(database, ROOT / "migrations")
    models.bind(database)
    spec = parse_job({"name": "bench", "commands": [["true"]]})
    job = database.write(lambda: jobstore.save_job(database.writer, spec, datetime.now(UTC)))
    config = configmod.load(None, {})
    inbox: Queue = Queue(maxsize=config.syncer_inbox_size)
    # No stats collector here: the syncer's put_nowait drops what does not fit.
    syncer = Syncer(inbox, database, RealClock(), Queue(maxsize=100), config)
    runner = gevent.spawn(syncer.run)
    gcpolicy.settle()  # as the scheduler loop does once start-up is done
    load, gc_pauses = Load(interval=senders / rate if rate else 0.0), GcPauses()
    gc.callbacks.append(gc_pauses)
    ticks = Ticker(gc_pauses)
    ticker = gevent.spawn(ticks.run, load)
    holds = None
    if trace_holds:
        names = {runner: "reader", syncer._write_loop: "writer", ticker: "ticker"}
        holds = Holds(names, gc_pauses)
        greenlet.settrace(holds)
    cpu, started = os.times(), time.perf_counter()
    group = [gevent.spawn(sender, inbox, job.id, load) for _ in range(senders)]
    gevent.sleep(seconds)
    load.stopping = True
    gevent.joinall(group)
    done = messages.Flush(datetime.now(UTC))
    inbox.put(done)
    done.reply.get(timeout=120)
    elapsed = time.perf_counter() - started
    cpu_end = os.times()
    greenlet.settrace(None)
    gc.callbacks.remove(gc_pauses)
    ticker.join()
    inbox.put(messages.ShutDown())
    runner.join(timeout=60)
    complete = database.read(final_runs)
    database.close()
    used = (cpu_end.user - cpu.user) + (cpu_end.system - cpu.system)
    result = {
        "db": driver,
        "seconds": round(elapsed, 2),
        "senders": senders,
        "offered_per_s": rate or None,
        "messages": load.messages,
        "updates_per_s": round(load.messages / elapsed),
        "runs_per_s": round(load.runs / elapsed),
        "loop_p50_ms": round(percentile(ticks.lateness, 0.5) * 1000, 2),
        "loop_p99_ms": round(percentile(ticks.lateness, 0.99) * 1000, 2),
        "loop_max_ms": round(max(ticks.lateness, default=0.0) * 1000, 2),
        "ticks": len(ticks.lateness),
        "late_ticks": ticks.causes,
        "claim_ack_p99_ms": round(percentile(load.claim_waits, 0.99) * 1000, 1),
        "gc": gc_pauses.summary(),
        "cpu_share": round(used / elapsed, 2),
        "load_avg": round(os.getloadavg()[0], 2),
        "poison": syncer.poison_count,
        "refused": load.refused,
        "lost": load.runs - complete,
    }
    if holds is not None:
        result["holds_ms"] = holds.summary()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "mysql"), required=True)
    parser.add_argument("--dsn", help="an existing migrated-or-empty database to use")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=1000, help="orchestrator stand-ins")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="messages per second offered (default: all)"
    )
    parser.add_argument("--holds", action="store_true", help="trace how long each part runs")
    args = parser.parse_args()
    dsn, scratch_name = (args.dsn, None) if args.dsn else scratch(args.db)
    try:
        result = bench(args.db, dsn, args.seconds, args.senders, args.rate, args.holds)
    finally:
        if scratch_name:
            admin(args.db, f"DROP DATABASE IF EXISTS {scratch_name}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
