"""Benchmark: web UI pages with 1,000 jobs, N runs (200 of them active), scheduler running.

Usage: python bench/web.py --dsn DSN [--runs N] [--seconds S] [--rate R] [--warmup W]
                          [--settle S]

Seeds a fresh database like bench/api.py (1,000 jobs, N finished runs by
server-side SQL), starts the real App (scheduler, syncer, API and UI on
127.0.0.1:0, open on loopback), then adds 200 active runs and measures each page
at R requests/s from a separate load-generator process: the running page and
its cards partial, the job list (first page, a name search, a status filter, and its
polled rows partial, changed and unchanged), a job page and a
run page, once `--settle` seconds have passed since start-up (the scheduler's index
and the anomaly detector's baselines over a million runs are not what a page costs).
A ticker in the server process measures how late the gevent loop (and so the
scheduler loop) wakes. Between pages the bench waits until the server has answered
every request it was sent (a page that fell behind leaves a backlog that would
otherwise be charged to the next page, and stopping the app under it hung it) and the
loop has been quiet for a second; `drain_s` says how long that took. One JSON line per
page.

History pages (issue 10): the Gantt data for the last 24 h of the seeded runs over the
1,000 jobs, and a job with a run every minute for 30 days (43,200 runs, paused so the
scheduler leaves it alone): its overview for the 24 h and 30 d windows (figures cached
10 s per job and window), `GET /api/v1/jobs/{id}/stats?window=30d` (not cached: the
roll-up of itinerary/rollup.py each time) and its charts' JSON in a random display zone
per request (a cache miss each time). Before the load, the first (cold: no roll-up yet)
and second stats request are timed once and printed as `cold_stats_ms`.
`--only A,B` measures only the pages whose label contains A or B.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from itinerary import config as cfg  # noqa: E402
from itinerary.db import Database, parse_dsn  # noqa: E402
from itinerary.migrate import migrate  # noqa: E402
from itinerary.models import JobRun  # noqa: E402

# bench/api.py's database set-up, seeding and load generator, shared rather than copied.
_spec = importlib.util.spec_from_file_location("bench_api", Path(__file__).with_name("api.py"))
api_bench = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(api_bench)  # type: ignore[union-attr]

ACTIVE = 200
TICK_S = 0.05
DRAIN_TIMEOUT_S = 300.0
IN_FLIGHT = [0]  # requests the server is working on (counted by `counting`)


def counting(app):  # type: ignore[no-untyped-def]
    """The server's WSGI app, counting the requests in flight (see `drain`)."""

    def wsgi(environ, start_response):  # type: ignore[no-untyped-def]
        IN_FLIGHT[0] += 1
        try:
            return app(environ, start_response)
        finally:
            IN_FLIGHT[0] -= 1

    return wsgi


def drain(lateness: list[float]) -> float:
    """Wait until no request is in flight and the loop has been on time for a second
    (at most DRAIN_TIMEOUT_S); the seconds waited."""
    t = time.monotonic()
    quiet_since = None
    while time.monotonic() - t < DRAIN_TIMEOUT_S:
        busy = IN_FLIGHT[0] > 0 or any(late > 20 for late in lateness[-20:])
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 1.0:
            break
        gevent.sleep(0.1)
    return round(time.monotonic() - t, 1)


MINUTELY_RUNS = 43_200  # 30 days of a job that runs every minute


def add_active_runs(database: Database, count: int) -> None:
    """`count` running runs of different jobs, started in the last 10 minutes."""
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        {
            "job_id": i % 1000 + 1,
            "scheduled_at": now - timedelta(seconds=3 * i),
            "run_id": f"ractive{i:09d}",
            "status": "running",
            "trigger": "schedule",
            "started_at": now - timedelta(seconds=3 * i - 1),
            "executor": "local",
            "handle": {"pid": 1, "log": "/dev/null"},
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    database.write(lambda: JobRun.insert_many(rows).execute(database.writer))


def add_minutely_job(database: Database) -> int:
    """A paused job with a run every minute for the last 30 days; its id."""
    from itinerary import jobstore
    from itinerary.jobs import parse_job

    spec = parse_job(
        {"name": "every-minute", "commands": [["true"]], "schedule": "* * * * *", "enabled": False}
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    if database.driver == "postgres":  # the seed chose ids 1..1000 itself
        database.write(
            lambda: database.writer.execute_sql(
                "SELECT setval(pg_get_serial_sequence('job', 'id'), (SELECT MAX(id) FROM job))"
            )
        )
    job_id = database.write(lambda: jobstore.save_job(database.writer, spec, now).id)
    rows = []
    for i in range(MINUTELY_RUNS):
        slot = now - timedelta(minutes=i + 1)
        failed = i % 50 == 0
        rows.append(
            {
                "job_id": job_id,
                "scheduled_at": slot,
                "run_id": f"rminute{i:09d}",
                "status": "failed" if failed else "succeeded",
                "trigger": "schedule",
                "started_at": slot + timedelta(seconds=1 + i % 3),
                "completed_at": slot + timedelta(seconds=20 + i % 17),
                "created_at": slot,
                "updated_at": slot,
            }
        )
    for start in range(0, len(rows), 2000):
        chunk = rows[start : start + 2000]
        database.write(lambda c=chunk: JobRun.insert_many(c).execute(database.writer))
    return job_id


def client(url: str, rate: float, seconds: float, runs: int, warmup: float) -> None:
    """The load generator (its own process): like bench/api.py's, but 204 counts as an answer."""
    import random
    import zoneinfo

    import requests

    ZONES = sorted(z for z in zoneinfo.available_timezones() if "/" in z)

    sessions = [requests.Session() for _ in range(64)]
    latencies: list[float] = []
    errors = 0
    skip, total = int(rate * warmup), int(rate * (warmup + seconds))
    start = time.monotonic() + 0.1

    def one(i: int) -> None:
        nonlocal errors
        gevent.sleep(max(0.0, start + i / rate - time.monotonic()))
        target = url.replace("{n}", str(random.randrange(runs)).rjust(15, "0"))
        target = target.replace("{zone}", random.choice(ZONES))
        t = time.monotonic()
        try:
            ok = sessions[i % len(sessions)].get(target, timeout=10).status_code in (200, 204)
        except requests.RequestException:
            ok = False
        if i >= skip:
            errors += not ok
            latencies.append((time.monotonic() - t) * 1000)

    gevent.joinall([gevent.spawn(one, i) for i in range(total)], timeout=warmup + seconds + 30)
    p = api_bench.percentile
    result = {
        "done": len(latencies),
        "errors": errors + total - skip - len(latencies),
        "elapsed": time.monotonic() - start - warmup,
        "p50": p(latencies, 0.5),
        "p99": p(latencies, 0.99),
    }
    print(json.dumps(result))  # noqa: T201


def run(base: str, args: argparse.Namespace, minutely: int = 0) -> None:
    lateness: list[float] = []

    def ticker() -> None:
        while True:
            t = time.monotonic()
            gevent.sleep(TICK_S)
            lateness.append((time.monotonic() - t - TICK_S) * 1000)

    tick = gevent.spawn(ticker)
    pages = {
        "/running": f"{base}/running",
        "/running/_cards": f"{base}/running/_cards",
        "/running/_cards (unchanged, 204)": None,  # the version is read below
        "/jobs": f"{base}/jobs",
        "/jobs?name=job-1*&tags=team-1": f"{base}/jobs?name=job-1*&tags=team-1",
        "/jobs?status=failing (scans up to 1,000 jobs)": f"{base}/jobs?status=failing",
        "/jobs/_rows": f"{base}/jobs/_rows",
        "/jobs/_rows (unchanged, 204)": None,  # the version is read below
        "/jobs/7/definition": f"{base}/jobs/7/definition",
        "/runs/<run_id>": f"{base}/runs/r{{n}}",
    }
    seeded_end = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=args.runs)
    window = f"from={(seeded_end - timedelta(hours=24)).isoformat()}&to={seeded_end.isoformat()}"
    pages["/history/data.json (24 h, 1,000 jobs)"] = f"{base}/history/data.json?" + window.replace(
        "+", "%2B"
    )
    pages[f"/jobs/{minutely} (43,200 runs, 24h)"] = f"{base}/jobs/{minutely}?window=24h"
    pages[f"/jobs/{minutely} (43,200 runs, 30d)"] = f"{base}/jobs/{minutely}?window=30d"
    pages[f"/api/v1/jobs/{minutely}/stats?window=30d (43,200 runs)"] = (
        f"{base}/api/v1/jobs/{minutely}/stats?window=30d"
    )
    pages[f"/jobs/{minutely}/charts.json (43,200 runs, 30d, random zone)"] = (
        f"{base}/jobs/{minutely}/charts.json?window=30d&zone={{zone}}"
    )
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        pages = {k: v for k, v in pages.items() if any(w in k for w in wanted)}
    import requests

    cold = []
    for _ in range(2):  # the first builds the roll-up (handed to the syncer), the second reads it
        t = time.monotonic()
        requests.get(f"{base}/api/v1/jobs/{minutely}/stats?window=30d", timeout=60)
        cold.append(round((time.monotonic() - t) * 1000, 1))
        gevent.sleep(2)  # the syncer's flush
    print(json.dumps({"cold_stats_ms": cold[0], "second_stats_ms": cold[1]}), flush=True)  # noqa: T201
    if "/running/_cards (unchanged, 204)" in pages:
        first = requests.get(f"{base}/running/_cards", timeout=10).text
        version = first.split("/running/_cards?v=")[1].split('"')[0]
        pages["/running/_cards (unchanged, 204)"] = f"{base}/running/_cards?v={version}"
    if "/jobs/_rows (unchanged, 204)" in pages:
        first = requests.get(f"{base}/jobs", timeout=10).text
        query = first.split('hx-get="/jobs/_rows?')[1].split('"')[0].replace("&amp;", "&")
        pages["/jobs/_rows (unchanged, 204)"] = f"{base}/jobs/_rows?{query}"
    for label, url in pages.items():
        drained = drain(lateness)
        lateness.clear()
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--dsn",
                args.dsn,
                "--client",
                str(url),
                "--rate",
                str(args.rate),
                "--seconds",
                str(args.seconds),
                "--runs",
                str(args.runs),
                "--warmup",
                str(args.warmup),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        while proc.poll() is None:  # keep the server's loop free while the client works
            gevent.sleep(0.1)
        result = json.loads((proc.stdout.read() if proc.stdout else "").strip().splitlines()[-1])
        print(  # noqa: T201
            json.dumps(
                {
                    "page": label,
                    "rps": round(result["done"] / result["elapsed"], 1),
                    "p50_ms": round(result["p50"], 2),
                    "p99_ms": round(result["p99"], 2),
                    "errors": result["errors"],
                    "loop_lateness_p99_ms": round(api_bench.percentile(lateness, 0.99), 2),
                    "drain_s": drained,
                    "runs": args.runs,
                    "active": ACTIVE,
                }
            ),
            flush=True,
        )
    drain(lateness)  # stopping the app with requests in flight hung it in Database.close
    tick.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds of load first")
    parser.add_argument(
        "--settle", type=float, default=60.0, help="seconds between start-up and the first load"
    )
    parser.add_argument(
        "--only", help="only pages whose label contains one of these (comma-separated)"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.rate, args.seconds, args.runs, args.warmup)
        return
    dsn, name = api_bench.create_database(args.dsn)
    try:
        database = Database(parse_dsn(dsn))
        migrate(database, ROOT / "migrations")
        t = time.monotonic()
        api_bench.seed(database, args.runs)
        minutely = add_minutely_job(database)
        database.close()
        print(json.dumps({"seeded_runs": args.runs, "seed_s": round(time.monotonic() - t, 1)}))  # noqa: T201
        config = replace(
            cfg.load(None, {}),
            db_dsn=dsn,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            log_dir=tempfile.mkdtemp(),
            shutdown_timeout=5.0,  # the 200 seeded active runs are not waited for at the end
        )
        import itinerary.app as app_module

        make_root = app_module.make_root
        app_module.make_root = lambda *a: counting(make_root(*a))
        app = app_module.App(config)
        app.start()
        try:
            add_active_runs(app.database, ACTIVE)  # after start-up: the loop does not adopt them
            # Start-up work (the scheduler's index, the anomaly detector's baselines over a
            # million runs) is not what the pages cost: measure once it is done.
            gevent.sleep(args.settle)
            run(app.url, args, minutely)
        finally:
            app.stop()
    finally:
        api_bench.drop_database(args.dsn, name)


if __name__ == "__main__":
    main()
