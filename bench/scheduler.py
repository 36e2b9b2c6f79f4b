"""Benchmark the scheduler loop: start lateness, loop iteration time, index rebuild, CPU, RSS.

Usage: python bench/scheduler.py --jobs N [--minutes M]

Runs the real loop and orchestrators on the real clock with the instant executor
(every attempt succeeds as it starts), so lateness is the honest
`actual start - scheduled time` on the clock the loop uses. The syncer is a
stand-in that acknowledges every claim at once (the syncer's own throughput is
benchmarked separately); its presence is stated in the output. No database.

Jobs are a mix of schedules: 40% every minute, 30% every 5 minutes, 20% hourly
(spread over the hour), 10% weekday mornings in four timezones; `--every-minute` makes
every job run every minute (the issue's lateness target).
One JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

from gevent import monkey

monkey.patch_all()

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gevent  # noqa: E402
from gevent.queue import Queue  # noqa: E402

from itinerary import config as configmod  # noqa: E402
from itinerary.clock import RealClock  # noqa: E402
from itinerary.executors.instant import InstantExecutor  # noqa: E402
from itinerary.index import IndexBuilder  # noqa: E402
from itinerary.jobs import JobSpec  # noqa: E402
from itinerary.messages import (  # noqa: E402
    ClaimSlot,
    LoopIteration,
    Queues,
    RunStartLateness,
)
from itinerary.scheduler import Scheduler  # noqa: E402

ZONES = ("UTC", "America/New_York", "Europe/London", "Asia/Tokyo")


def make_jobs(count: int, every_minute: bool) -> list[JobSpec]:
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
        jobs.append(
            JobSpec(name=f"j{i}", id=i + 1, schedule=schedule, timezone=tz, commands=(("true",),))
        )
    return jobs


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


def bench(count: int, minutes: float, every_minute: bool) -> dict:
    clock = RealClock()
    config = configmod.load(None, {})
    jobs = make_jobs(count, every_minute)
    # Index rebuild: a full build from scratch, then an incremental one a minute later.
    builder = IndexBuilder(config.grace_period, config.lookahead_window)
    builder.set_jobs(jobs)
    t = time.perf_counter()
    builder.rebuild(clock.now())
    full_build = time.perf_counter() - t
    t = time.perf_counter()
    builder.rebuild(clock.now() + timedelta(minutes=1))
    rebuild = time.perf_counter() - t

    queues = Queues(Queue(), Queue(), Queue(), Queue())
    gevent.spawn(ack_claims, queues.syncer)
    scheduler = Scheduler(config, queues, clock, InstantExecutor(clock), database=None)  # type: ignore[arg-type]
    scheduler.jobs = {j.id: j for j in jobs}
    scheduler.builder.set_jobs(jobs)
    lateness: list[float] = []
    loops: list[float] = []

    def collect() -> None:
        while True:
            msg = queues.stats.get()
            # Slots due before the benchmark began are near-misses of its start, not lateness.
            if (
                isinstance(msg, RunStartLateness)
                and msg.at - timedelta(seconds=msg.lateness_s) >= began
            ):
                lateness.append(msg.lateness_s)
            elif isinstance(msg, LoopIteration):
                loops.append(msg.duration_s)

    began = clock.now()
    gevent.spawn(collect)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    loop = gevent.spawn(scheduler.run)
    gevent.sleep(minutes * 60)
    scheduler.stop()
    loop.join(timeout=60)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    gevent.sleep(0.1)
    return {
        "jobs": count,
        "mix": "every minute" if every_minute else "realistic",
        "minutes": minutes,
        "runs": len(lateness),
        "lateness_p50_ms": round(percentile(lateness, 50) * 1000, 2),
        "lateness_p99_ms": round(percentile(lateness, 99) * 1000, 2),
        "lateness_max_ms": round(max(lateness, default=0.0) * 1000, 2),
        "loop_p99_ms": round(percentile(loops, 99) * 1000, 2),
        "loop_max_ms": round(max(loops, default=0.0) * 1000, 2),
        "rebuild_s": round(rebuild, 3),
        "full_build_s": round(full_build, 3),
        "cpu_share": round(cpu / wall, 3),
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "executor": "instant",
        "syncer": "stand-in acknowledging claims at once",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--every-minute", action="store_true", help="all jobs run every minute")
    args = parser.parse_args()
    print(json.dumps(bench(args.jobs, args.minutes, args.every_minute)), flush=True)


if __name__ == "__main__":
    main()
