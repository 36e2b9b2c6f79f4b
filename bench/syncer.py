"""Syncer throughput: sustained ClaimSlot + RunUpdate messages per second, written durably,
with a ticker greenlet standing in for the scheduler loop to measure how late it wakes.

    python bench/syncer.py --db sqlite|postgres|mysql [--dsn DSN] [--seconds S]

Without --dsn it creates a scratch database (a temp file, or a database on the local
server) and drops it afterwards. Prints one JSON line:
db, updates_per_s (messages made durable per second, counted from the first send to
the final Flush's reply), rows_per_s (job_run rows written), loop_p99_ms / loop_max_ms
(how much later than asked the ticker woke, 99th percentile and worst), lost (runs not
in their final state at the end; must be 0).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.queue import Queue  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from itinerary import config as configmod  # noqa: E402
from itinerary import db as dbmod  # noqa: E402
from itinerary import jobstore, messages  # noqa: E402
from itinerary.clock import RealClock  # noqa: E402
from itinerary.jobs import parse_job  # noqa: E402
from itinerary.migrate import migrate  # noqa: E402
from itinerary.syncer import Syncer  # noqa: E402

ADMIN = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mysql": "mysql://root@127.0.0.1:3306/mysql",
}
TICK = 0.01  # the ticker's interval (seconds)
UPDATES_PER_RUN = 4  # after the claim: starting, running, succeeded, a late detail


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


def produce(inbox: Queue, job_id: int, stop: list[bool], sent: list[int]) -> None:
    """Runs like orchestrators make them; yields now and then as many senders would."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    n = 0
    while not stop[0]:
        rid, at = f"rb{n:014d}", t0 + timedelta(seconds=n)
        inbox.put(messages.ClaimSlot(rid, job_id, at, "schedule", "scheduled", at))
        inbox.put(messages.RunUpdate(rid, at + timedelta(1), status="starting", attempt=1))
        inbox.put(messages.RunUpdate(rid, at + timedelta(2), status="running", started_at=at))
        inbox.put(messages.RunUpdate(rid, at + timedelta(3), status="succeeded", exit_code=0))
        inbox.put(messages.RunUpdate(rid, at + timedelta(4), completed_at=at, reason="ok"))
        sent[0] += 1 + UPDATES_PER_RUN
        n += 1
        if n % 20 == 0:
            gevent.sleep(0)


def tick(lateness: list[float], stop: list[bool]) -> None:
    last = time.perf_counter()
    while not stop[0]:
        gevent.sleep(TICK)
        now = time.perf_counter()
        lateness.append(max(0.0, now - last - TICK))
        last = now


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def bench(driver: str, dsn: str, seconds: float) -> dict:
    database = dbmod.Database(dbmod.parse_dsn(dsn))
    migrate(database, ROOT / "migrations")
    dbmod.bind(database)
    spec = parse_job({"name": "bench", "commands": [["true"]]})
    now = datetime.now(UTC)
    job = database.write(lambda: jobstore.save_job(database.writer, spec, now))
    config = configmod.load(None, {})
    inbox: Queue = Queue(maxsize=config.syncer_inbox_size)
    syncer = Syncer(inbox, database, RealClock(), Queue(), config)
    runner = gevent.spawn(syncer.run)
    stop, sent, lateness = [False], [0], []
    ticker = gevent.spawn(tick, lateness, stop)
    started = time.perf_counter()
    producer = gevent.spawn(produce, inbox, job.id, stop, sent)
    gevent.sleep(seconds)
    stop[0] = True
    producer.join()
    done = messages.Flush(datetime.now(UTC))
    inbox.put(done)
    done.reply.get(timeout=120)
    elapsed = time.perf_counter() - started
    ticker.join()
    inbox.put(messages.ShutDown())
    runner.join(timeout=60)
    runs = sent[0] // (1 + UPDATES_PER_RUN)

    def final() -> int:
        return (
            dbmod.JobRun.select()
            .where((dbmod.JobRun.status == "succeeded") & (dbmod.JobRun.reason == "ok"))
            .count()
        )

    complete = database.read(final)
    database.close()
    return {
        "db": driver,
        "seconds": round(elapsed, 2),
        "messages": sent[0],
        "updates_per_s": round(sent[0] / elapsed),
        "rows_per_s": round(runs / elapsed),
        "loop_p99_ms": round(percentile(lateness, 0.99) * 1000, 2),
        "loop_max_ms": round(max(lateness, default=0.0) * 1000, 2),
        "ticks": len(lateness),
        "poison": syncer.poison_count,
        "lost": runs - complete,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "mysql"), required=True)
    parser.add_argument("--dsn", help="an existing migrated-or-empty database to use")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    dsn, scratch_name = (args.dsn, None) if args.dsn else scratch(args.db)
    try:
        result = bench(args.db, dsn, args.seconds)
    finally:
        if scratch_name:
            admin(args.db, f"DROP DATABASE IF EXISTS {scratch_name}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
