"""Benchmark: API latency and throughput with 1,000 jobs and N runs, scheduler running.

Usage: python bench/api.py --dsn DSN [--runs N] [--seconds S] [--rate R] [--warmup W]
                           [--replicas K]

DSN names a server (postgresql://postgres@127.0.0.1:5432/postgres, mysql://root@...)
or sqlite:///ignored; a fresh database is created, migrated, seeded with 1,000
jobs and N runs by server-side SQL, served by the real App (scheduler, syncer,
API on a pywsgi server on 127.0.0.1:0), and dropped at the end. A load generator
in a separate process sends R requests/s to each endpoint in turn for W + S seconds
and counts the last S (the first W open connections and the server's database pool);
meanwhile a ticker in the server process measures how late the gevent loop (and so
the scheduler loop) wakes. One JSON line per endpoint.

With `--replicas K` (K > 1) the database is served by K `itinerary.py` processes
instead (one leads and schedules, the others stand by: README "Replicas"), and the
load generator spreads the R requests/s round-robin over them, so the figures show
how read capacity grows with replicas on one database. Server CPU is then the sum over
the K processes (read from /proc), and loop lateness is not measured (it is the
in-process ticker's).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from itinerary import config as cfg  # noqa: E402
from itinerary.db import Database, parse_dsn  # noqa: E402
from itinerary.migrate import migrate  # noqa: E402

sys.path.insert(1, str(Path(__file__).resolve().parent))
from dbadmin import create_database, drop_database  # noqa: E402

JOBS = 1000
TICK_S = 0.05


SEQ = {  # n = 0 .. N-1, one row each
    "postgres": "SELECT g - 1 AS n FROM generate_series(1, {count}) g",
    "mysql": "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {last}) "
    "SELECT n FROM s",
    "sqlite": "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {last}) "
    "SELECT n FROM s",
}
START = {
    "postgres": "TIMESTAMP '2024-01-01 00:00:00'",
    "mysql": "TIMESTAMP('2024-01-01 00:00:00')",
    "sqlite": "'2024-01-01 00:00:00'",
}
MINUTES = {
    "postgres": "(TIMESTAMP '2024-01-01 00:00:00' + n * INTERVAL '1 minute')",
    "mysql": "(TIMESTAMP('2024-01-01 00:00:00') + INTERVAL n MINUTE)",
    "sqlite": "datetime('2024-01-01 00:00:00', '+' || n || ' minutes')",
}


def seed(database: Database, runs: int) -> None:
    """1,000 jobs (tags team-0..9) and `runs` finished runs spread over the jobs."""
    driver = database.driver
    at = MINUTES[driver]
    epoch = START[driver]
    # Every NOT NULL text column is given: MySQL's TEXT columns have no defaults.
    jobs_sql = (
        "INSERT INTO job (id, name, active_name, schedule, description, images, commands, args, "
        "service_accounts, env, constraints, manual_run_modifiable_fields, created_at, updated_at) "
        "SELECT n + 1, CONCAT('job-', n), CONCAT('job-', n), CONCAT(n % 60, ' 3 1 1 *'), "
        f"'', '[]', '[[\"true\"]]', '[]', '[]', '{{}}', '{{}}', '[]', {epoch}, {epoch} "
        f"FROM ({SEQ[driver].format(count=JOBS, last=JOBS - 1)}) q"
    )
    if driver == "sqlite":
        jobs_sql = jobs_sql.replace("CONCAT('job-', n)", "'job-' || n").replace(
            "CONCAT(n % 60, ' 3 1 1 *')", "(n % 60) || ' 3 1 1 *'"
        )
    tags_sql = (
        "INSERT INTO job_tags (job_id, tag) SELECT n + 1, "
        + ("'team-' || (n % 10)" if driver == "sqlite" else "CONCAT('team-', n % 10)")
        + f" FROM ({SEQ[driver].format(count=JOBS, last=JOBS - 1)}) q"
    )
    run_id = (
        "'r' || lpad(CAST(n AS TEXT), 15, '0')"
        if driver == "postgres"
        else (
            "CONCAT('r', LPAD(n, 15, '0'))"
            if driver == "mysql"
            else "'r' || substr('000000000000000' || n, -15, 15)"
        )
    )
    status = "CASE WHEN n % 7 = 0 THEN 'failed' ELSE 'succeeded' END"
    runs_sql = (
        "INSERT INTO job_run (job_id, scheduled_at, run_id, status, started_at, completed_at, "
        "created_at, updated_at) "
        f"SELECT n % {JOBS} + 1, {at}, {run_id}, {status}, {at}, {at}, {at}, {at} "
        f"FROM ({SEQ[driver].format(count=runs, last=runs - 1)}) q"
    )

    def write() -> None:
        w = database.writer
        if driver == "mysql":
            w.execute_sql("SET SESSION max_recursive_iterations = 100000000")
        with w.atomic():
            for sql in (jobs_sql, tags_sql, runs_sql):
                # psycopg2 and PyMySQL use %s for parameters: a literal % is written %%
                w.execute_sql(sql if driver == "sqlite" else sql.replace("%", "%%"))
        # Leave the database settled, so the seeding's aftermath is not measured as the API's:
        # on PostgreSQL, VACUUM sets the hint bits the first reads would otherwise write, and
        # CHECKPOINT flushes the million new rows now rather than during the load.
        for sql in {
            "sqlite": ("ANALYZE",),
            "postgres": ("VACUUM ANALYZE", "CHECKPOINT"),
            "mysql": ("ANALYZE TABLE job_run",),
        }[driver]:
            w.execute_sql(sql)

    database.write(write)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the load generator (a separate process, so it does not share the server's loop) -----


def client(urls: list[str], rate: float, seconds: float, runs: int, warmup: float) -> None:
    """Send `rate` requests/s for `warmup` + `seconds`, round-robin over `urls`."""
    import requests

    sessions = [requests.Session() for _ in range(64)]
    latencies: list[float] = []
    errors = 0
    # The first `warmup` seconds of the same load are sent but not counted: they measure
    # this process opening its 64 connections (it falls behind and then sends the overdue
    # requests at once) and the server opening its database pool, not the steady state.
    skip = int(rate * warmup)
    total = skip + int(rate * seconds)
    start = time.monotonic() + 0.1  # once every request's greenlet below exists
    cpu = time.process_time()

    def one(i: int) -> None:
        nonlocal errors
        gevent.sleep(max(0.0, start + i / rate - time.monotonic()))
        target = urls[i % len(urls)].replace("{n}", str(random.randrange(runs)).rjust(15, "0"))
        t = time.monotonic()
        try:
            ok = sessions[i % len(sessions)].get(target, timeout=10).status_code == 200
        except requests.RequestException:
            ok = False
        if i >= skip:
            errors += not ok
            latencies.append((time.monotonic() - t) * 1000)

    gevent.joinall([gevent.spawn(one, i) for i in range(total)], timeout=warmup + seconds + 30)
    elapsed = time.monotonic() - start - warmup
    cpu_ms = (time.process_time() - cpu) * 1000 / max(1, total)
    print(
        json.dumps(
            {
                "done": len(latencies),
                "errors": errors + total - skip - len(latencies),  # noqa: T201
                "elapsed": elapsed,
                "p50": percentile(latencies, 0.5),
                "p99": percentile(latencies, 0.99),
                "cpu_ms": cpu_ms,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds of load first")
    parser.add_argument(
        "--replicas", type=int, default=1, help="server processes on the database (round-robin)"
    )
    parser.add_argument("--client", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.client:
        client(args.client, args.rate, args.seconds, args.runs, args.warmup)
        return

    dsn, name = create_database(args.dsn)
    try:
        database = Database(parse_dsn(dsn))
        migrate(database, ROOT / "migrations")
        t = time.monotonic()
        seed(database, args.runs)
        database.close()
        print(
            json.dumps(
                {
                    "seeded_runs": args.runs,
                    "jobs": JOBS,  # noqa: T201
                    "seed_s": round(time.monotonic() - t, 1),
                }
            ),
            flush=True,
        )
        if args.replicas > 1:
            servers = Replicas(dsn, args.replicas)
            try:
                run(servers.urls, args, servers.cpu_seconds)
            finally:
                servers.stop()
            return
        config = replace(
            cfg.load(None, {}),
            db_dsn=dsn,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            log_dir=tempfile.mkdtemp(),
        )
        try:
            from itinerary.app import App

            app = App(config)
            app.start()
        except ImportError as exc:  # the full App is not in the tree yet
            print(json.dumps({"note": f"App unavailable ({exc}); API + syncer only"}))  # noqa: T201
            app = ApiOnly(config)
        try:
            run([app.url], args, time.process_time, in_process=True)
        finally:
            app.stop()
    finally:
        drop_database(args.dsn, name)


class ApiOnly:
    """The API and the real syncer on a pywsgi server, without the scheduler."""

    def __init__(self, config: cfg.Config) -> None:
        from gevent.pywsgi import WSGIServer
        from gevent.queue import Queue

        from itinerary.api import make_api
        from itinerary.clock import RealClock
        from itinerary.context import Context
        from itinerary.http import make_root
        from itinerary.messages import Queues
        from itinerary.models import bind
        from itinerary.syncer import Syncer

        self.database = Database(config.dsn)
        bind(self.database)
        queues = Queues(Queue(), Queue(config.syncer_inbox_size), Queue(), Queue())
        ctx = Context(config, self.database, queues, RealClock())
        self.syncer = gevent.spawn(
            Syncer(queues.syncer, self.database, ctx.clock, queues.stats, config).run
        )
        self.server = WSGIServer(("127.0.0.1", 0), make_root(ctx, make_api(ctx)), log=None)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.stop()
        self.syncer.kill()
        self.database.close()


class Replicas:
    """K `itinerary.py` processes on one database, the first one leading (it starts first)."""

    def __init__(self, dsn: str, count: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ITINERARY_")}
        env.update(
            ITINERARY_DB_DSN=dsn,
            ITINERARY_PORT="0",
            ITINERARY_LOG_LEVEL="warning",
            ITINERARY_LOG_DIR=tempfile.mkdtemp(),
        )
        self.procs: list[subprocess.Popen] = []
        self.urls: list[str] = []
        try:
            for i in range(count):
                with open(Path(env["ITINERARY_LOG_DIR"]) / f"replica-{i}.log", "w") as log:
                    proc = subprocess.Popen(
                        [sys.executable, str(ROOT / "itinerary.py")],
                        stdout=subprocess.PIPE,
                        stderr=log,
                        text=True,
                        env=env,
                        cwd=env["ITINERARY_LOG_DIR"],
                    )
                self.procs.append(proc)
                line = proc.stdout.readline() if proc.stdout else ""
                if "running at " not in line:
                    raise RuntimeError(f"replica did not start: {line!r}")
                self.urls.append(line.split("running at ")[1].split()[0])
        except BaseException:
            self.stop()
            raise

    def cpu_seconds(self) -> float:
        """User + system CPU of every replica so far (/proc/<pid>/stat, clock ticks)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / ticks

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)


def run(
    bases: list[str],
    args: argparse.Namespace,
    server_cpu: Callable[[], float],
    in_process: bool = False,
) -> None:
    lateness: list[float] = []

    def ticker() -> None:
        while True:
            t = time.monotonic()
            gevent.sleep(TICK_S)
            lateness.append((time.monotonic() - t - TICK_S) * 1000)

    tick = gevent.spawn(ticker) if in_process else None
    endpoints = {
        "GET /runs?status=failed&job_id=…": "/api/v1/runs?status=failed&job_id=7&limit=100",
        "GET /runs/<run_id>": "/api/v1/runs/r{n}",
        "GET /jobs?tags=… (limit 100)": "/api/v1/jobs?tags=team-3&limit=100",
        "GET /jobs?tags=… (limit 20)": "/api/v1/jobs?tags=team-3&limit=20",
    }
    for label, path in endpoints.items():
        lateness.clear()
        cpu = server_cpu()
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--dsn",
                args.dsn,
                "--client",
                *(base + path for base in bases),
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
        out = ""
        while proc.poll() is None:  # keep the server's loop free while the client works
            gevent.sleep(0.1)
        out = proc.stdout.read() if proc.stdout else ""
        result = json.loads(out.strip().splitlines()[-1])
        sent = int(args.rate * (args.warmup + args.seconds))
        print(
            json.dumps(
                {  # noqa: T201
                    "endpoint": label,
                    "rps": round(result["done"] / result["elapsed"], 1),
                    "p50_ms": round(result["p50"], 2),
                    "p99_ms": round(result["p99"], 2),
                    "errors": result["errors"],
                    "loop_lateness_p99_ms": round(percentile(lateness, 0.99), 2)
                    if in_process
                    else None,
                    "runs": args.runs,
                    "replicas": len(bases),
                    # CPU per request (warm-up included) of this server process (API,
                    # scheduler, syncer) and of the load generator, and the machine's load:
                    # latency on a shared 2-core machine depends on all three.
                    "server_cpu_ms_per_req": round((server_cpu() - cpu) * 1000 / sent, 2),
                    "client_cpu_ms_per_req": round(result["cpu_ms"], 2),
                    "load1": round(os.getloadavg()[0], 2),
                }
            ),
            flush=True,
        )
    if tick is not None:
        tick.kill()


if __name__ == "__main__":
    main()
