"""Webhook throughput: deliveries per second, none lost, while the scheduler loop keeps time.

    python bench/webhooks.py [--deliveries 10000] [--rate 175] [--concurrency 20]
                             [--latency-ms 100] [--down-s 30] [--flaky 500] [--jobs 1000]

Two receivers run in their own processes on loopback: `steady` answers every request
after `--latency-ms`; `flaky` is down (connection refused) for `--down-s` seconds, then
starts and answers like the first. The real WebhookHandler sends `--deliveries` custom
webhooks to `steady`, offered at `--rate` a second, and `--flaky` to `flaky` spread over
the same time, while the real scheduler runs `--jobs` jobs every minute on the instant
executor (as bench/scheduler.py does). The syncer and stats collector are stand-ins that
count what they receive (no database: the syncer's own throughput is bench/syncer.py's).

Prints one JSON line:
- deliveries, delivered, failed, not_delivered, lost (sent but never ended: must be 0),
  for `steady`; flaky_delivered, flaky_failed, flaky_lost for `flaky`;
- per_s: `steady` deliveries ended per second, from the first send to the last end;
- p50/p99_delivery_ms: from the message put on the handler's inbox to its final record;
- loop_lateness_p99_ms / max: how much later than asked a 10 ms ticker woke (what the
  scheduler loop would feel); start_lateness_p99_ms: runs started late by the scheduler;
- runs: runs the scheduler started meanwhile; cpu_share, load_avg as bench/syncer.py.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
from gevent.queue import Queue  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import scheduler as loop_bench  # noqa: E402 - bench/scheduler.py: jobs, executor, claims

from itinerary import config as configmod  # noqa: E402
from itinerary.clock import RealClock  # noqa: E402
from itinerary.messages import DeliverWebhook, Queues, ShutDown, WebhookDeliveryRecord  # noqa: E402
from itinerary.webhooks.handler import WebhookHandler  # noqa: E402
from itinerary.webhooks.integrations import Integration  # noqa: E402

RECEIVER = """
import socket
import sys
from gevent import monkey; monkey.patch_all()
import gevent
from gevent.pywsgi import WSGIServer
delay = float(sys.argv[2])
def app(environ, start_response):
    environ["wsgi.input"].read()
    gevent.sleep(delay)
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
server = WSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None, backlog=1024)
server.init_socket()
# As a real web server does (and Itinerary's own): no delayed-ACK stall between the
# headers and the body of each answer.
server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
server.serve_forever()
"""
TICK = 0.01
FINAL = ("delivered", "failed", "not_delivered")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def receiver(port: int, latency_s: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), str(latency_s)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            gevent.sleep(0.05)
    raise SystemExit(f"receiver on {port} did not start")


def ticker(lateness: list[float], stop: gevent.event.Event) -> None:
    while not stop.is_set():
        asked = time.perf_counter()
        gevent.sleep(TICK)
        lateness.append(time.perf_counter() - asked - TICK)


def bench(args: argparse.Namespace) -> dict:
    clock = RealClock()
    config = replace(configmod.load(None, {}), webhook_concurrency=args.concurrency)
    steady_port, flaky_port = free_port(), free_port()
    procs = [receiver(steady_port, args.latency_ms / 1000)]
    integrations = {
        "steady": Integration("steady", "custom", {"url": f"http://127.0.0.1:{steady_port}/in"}),
        "flaky": Integration("flaky", "custom", {"url": f"http://127.0.0.1:{flaky_port}/in"}),
    }
    queues = Queues(Queue(), Queue(), Queue(), Queue())
    sent_at: dict[str, float] = {}
    ended: dict[str, tuple[str, float]] = {}  # run id -> (outcome, when)

    def syncer() -> None:  # stand-in: claims acknowledged, delivery records counted
        while True:
            msg = queues.syncer.get()
            if isinstance(msg, WebhookDeliveryRecord):
                if msg.outcome in FINAL and msg.run_id:
                    ended[msg.run_id] = (msg.outcome, time.perf_counter())
            elif hasattr(msg, "reply"):
                msg.reply.set(True)

    def stats() -> None:
        while True:
            queues.stats.get()

    gevent.spawn(syncer)
    gevent.spawn(stats)
    handler = WebhookHandler(
        queues.webhooks, queues.syncer, queues.stats, clock, config, lookup=integrations.get
    )
    jobs = loop_bench.make_jobs(args.jobs, every_minute=True)
    executor = loop_bench.TimedExecutor(clock)
    sched = loop_bench.TimedScheduler(config, queues, clock, executor, None)
    sched.jobs = {j.id: j for j in jobs if j.id is not None}
    sched.builder.set_jobs(jobs)
    stop = gevent.event.Event()
    lateness: list[float] = []
    workers = [
        gevent.spawn(handler.run),
        gevent.spawn(sched.run),
        gevent.spawn(ticker, lateness, stop),
    ]
    began_clock = clock.now()
    cpu0, wall0, load0 = time.process_time(), time.perf_counter(), os.getloadavg()[0]

    def send(name: str, run_id: str) -> None:
        sent_at[run_id] = time.perf_counter()
        queues.webhooks.put(
            DeliverWebhook(name, None, "on_success", run_id, 1, {"jobName": "bench"}, clock.now())
        )

    def flaky_comes_back() -> None:
        gevent.sleep(args.down_s)
        procs.append(receiver(flaky_port, args.latency_ms / 1000))

    gevent.spawn(flaky_comes_back)
    every = 1.0 / args.rate
    flaky_every = max(1, args.deliveries // max(1, args.flaky))
    start = time.perf_counter()
    for n in range(args.deliveries):
        delay = start + n * every - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        send("steady", f"s{n}")
        if n % flaky_every == 0 and n // flaky_every < args.flaky:
            send("flaky", f"f{n}")
    deadline = time.perf_counter() + 600
    while len(ended) < len(sent_at) and time.perf_counter() < deadline:
        gevent.sleep(0.2)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    stop.set()
    sched.stop()
    queues.webhooks.put(ShutDown())
    gevent.joinall(workers, timeout=30)
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)

    def count(prefix: str, outcome: str) -> int:
        return sum(1 for k, (o, _) in ended.items() if k[0] == prefix and o == outcome)

    steady = [k for k in sent_at if k[0] == "s"]
    flaky = [k for k in sent_at if k[0] == "f"]
    done = [ended[k][1] for k in steady if k in ended]
    latencies = [ended[k][1] - sent_at[k] for k in steady if k in ended]
    span = (max(done) - min(sent_at[k] for k in steady)) if done else 0.0
    starts = [(now - at).total_seconds() for at, now in executor.starts if at >= began_clock]
    pct = loop_bench.percentile
    return {
        "deliveries": len(steady),
        "delivered": count("s", "delivered"),
        "failed": count("s", "failed"),
        "not_delivered": count("s", "not_delivered"),
        "lost": sum(1 for k in steady if k not in ended),
        "flaky_deliveries": len(flaky),
        "flaky_delivered": count("f", "delivered"),
        "flaky_failed": count("f", "failed"),
        "flaky_lost": sum(1 for k in flaky if k not in ended),
        "per_s": round(len(done) / span, 1) if span else 0.0,
        "offered_per_s": args.rate,
        "concurrency": args.concurrency,
        "receiver_latency_ms": args.latency_ms,
        "p50_delivery_ms": round(pct(latencies, 50) * 1000, 1),
        "p99_delivery_ms": round(pct(latencies, 99) * 1000, 1),
        "loop_lateness_p99_ms": round(pct(lateness, 99) * 1000, 2),
        "loop_lateness_max_ms": round(max(lateness, default=0.0) * 1000, 2),
        "start_lateness_p99_ms": round(pct(starts, 99) * 1000, 2),
        "runs": len(starts),
        "jobs_per_minute": args.jobs,
        "cpu_share": round(cpu / wall, 3),
        "load_avg": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "syncer": "stand-in counting records",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=175.0, help="offered deliveries a second")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--down-s", type=float, default=30.0)
    parser.add_argument("--flaky", type=int, default=500, help="deliveries to the flaky receiver")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs every minute meanwhile")
    print(json.dumps(bench(parser.parse_args())), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
