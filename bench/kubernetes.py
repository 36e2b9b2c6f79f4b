"""Benchmark: N concurrent Kubernetes runs followed through one watch per namespace and kind.

Usage: python bench/kubernetes.py --runs 1000 [--rate 1000]

Starts the fake API server (tests/fakekube.py) and a KubernetesExecutor in this
process, creates N Jobs, starts their pods, then completes the pods at `--rate`
per second. Lateness is measured from the moment the fake emits a pod's
completion event to the moment the executor puts the run's final ExecEvent on
its queue. Prints one JSON line: runs, events_per_s (watch events dispatched per
second while completing), final_state_p50_ms, final_state_p99_ms,
outcomes (final states by kind: all must be succeeded), watch_connections
(open at the end) and watches_opened (reconnects included), rss_mb (peak, fake
server included). Bounded by --deadline seconds.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the client package: drop bench/ from the path so
# `import kubernetes` finds the client, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakekube import TOKEN, FakeKube  # noqa: E402

from itinerary import config as config_mod  # noqa: E402
from itinerary.clock import RealClock  # noqa: E402
from itinerary.executors.base import RunRequest  # noqa: E402
from itinerary.executors.kubernetes import KubernetesExecutor  # noqa: E402
from itinerary.jobs import parse_job  # noqa: E402

AT = datetime(2026, 3, 1, tzinfo=UTC)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="pod completions per second")
    parser.add_argument("--deadline", type=float, default=180.0, help="give up after (seconds)")
    args = parser.parse_args()
    with gevent.Timeout(args.deadline, SystemExit("benchmark exceeded its deadline")):
        print(json.dumps(run(args.runs, args.rate)))  # noqa: T201


def run(runs: int, rate: float) -> dict:
    kube = FakeKube(validate=False).start()
    completed_at: dict[str, float] = {}

    def on_event(plural: str, kind: str, obj: dict) -> None:
        if plural == "pods" and obj["status"].get("phase") == "Succeeded":
            completed_at[obj["metadata"]["labels"]["itinerary.dev/run-id"]] = time.perf_counter()

    kube.on_event = on_event
    config = replace(
        config_mod.load(None, {}),
        executor="kubernetes",
        kube_api_url=kube.url,
        kube_token=TOKEN,
        kube_qps=1e6,
        kube_burst=runs,
    )
    executor = KubernetesExecutor(config, RealClock())
    job = parse_job({"name": "bench", "namespace": "bench", "images": ["busybox"]}).with_id(1)
    requests = [RunRequest(f"rbench{i:010d}", job, AT + timedelta(minutes=i)) for i in range(runs)]
    final_at: dict[str, float] = {}
    outcomes: dict[str, int] = {}

    def follow(request: RunRequest) -> None:
        execution = executor.start(request)
        while True:
            event = execution.events.get()
            if event.final:
                final_at[request.run_id] = time.perf_counter()
                outcomes[event.kind] = outcomes.get(event.kind, 0) + 1
                return

    followers = gevent.pool.Group()
    for request in requests:
        followers.spawn(follow, request)
        gevent.sleep(0)
    while len(kube.jobs("bench")) < runs:
        gevent.sleep(0.01)
    jobs = kube.jobs("bench")
    for i, one in enumerate(jobs):
        kube.run_pod(one)
        if i % 50 == 0:
            gevent.sleep(0)
    gevent.sleep(0.5)
    events_before = sum(w.events for w in executor.watches.values())
    started = time.perf_counter()
    batch = max(1, int(rate / 100))
    for i, one in enumerate(jobs):
        kube.finish_pod(one, 0)
        if i % batch == batch - 1:
            gevent.sleep(batch / rate)
    followers.join()
    elapsed = time.perf_counter() - started
    events = sum(w.events for w in executor.watches.values()) - events_before
    lateness = [(final_at[r] - completed_at[r]) * 1000 for r in final_at]
    result = {
        "runs": runs,
        "events_per_s": round(events / elapsed, 1),
        "final_state_p50_ms": round(statistics.median(lateness), 2),
        "final_state_p99_ms": round(percentile(lateness, 0.99), 2),
        "final_state_max_ms": round(max(lateness), 2),
        "outcomes": outcomes,
        "watch_connections": kube.watch_connections,
        "watches_opened": kube.watches_opened,
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    executor.close()
    kube.stop()
    return result


if __name__ == "__main__":
    main()
