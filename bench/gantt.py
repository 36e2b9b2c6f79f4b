"""Benchmark: the run-history Gantt in a real Chromium (Playwright, Debian's chromium).

Usage: python bench/gantt.py [--jobs 40] [--runs 5000] [--steps 10] [--range 24h]
       [--theme light|dark] [--screenshot docs/ui-history.png]

Starts `itinerary.py` on SQLite (tests/browser.py's server), creates the jobs through
the API and writes `--runs` runs over the last 24 h straight into its database (every
shape: bars, failures, kills, skipped and missed slots, late starts, running runs), then
opens /history?range=24h and measures: `first_draw_ms`, from the navigation's start to
the chart having drawn its bars (ECharts' `finished` event after the data's
`setOption`; `data_asked_ms` and `data_loaded_ms` say when the page asked for
`/history/data.json` and when it had it: the rest is the browser); then `--steps`
programmatic zoom and pan steps (a `dataZoom` action through the page's
`itineraryGantt.setView`), each timed until the canvas has been redrawn (`finished`;
`zoom_p50_ms`, `zoom_p99_ms`). One JSON line. The acceptance targets (ui.md §4): 5,000
runs over 40 jobs drawn in under 3 s, each step redrawn within 250 ms. vis-timeline
8.5.4 took 20.6 s for the first draw here (README).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, LAUNCH_ARGS, open_tab, sign_in, start_server  # noqa: E402

# Every tenth run: mostly successes, a failure, a kill, a skipped and a missed slot (points).
STATES = ["succeeded"] * 6 + ["failed", "killed", "skipped", "missed"]


def _run_row(n: int, job: int, slot: datetime, rng: random.Random, running: bool) -> tuple:
    state = "running" if running else STATES[n % len(STATES)]
    late = 40 if n % 13 == 0 else rng.randint(0, 5)  # a late start gets a tick at its slot
    start = None if state in ("skipped", "missed") else slot + timedelta(seconds=late)
    end = None if start is None or running else start + timedelta(seconds=rng.randint(5, 600))
    reason = {"skipped": "maxConcurrentRuns 1 reached", "missed": "no replica held the lease"}
    text = "%Y-%m-%d %H:%M:%S"
    at = slot.strftime(text)
    return (
        job,
        at,
        f"rbench{n:010d}",
        "schedule",
        1,
        state,
        start and start.strftime(text),
        end and end.strftime(text),
        reason.get(state),
        n % 17 == 0 and end is not None,  # behind schedule: an amber outline
        at,
        at,
    )


def seed(server, jobs: int, runs: int) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {server.tokens['admin']}"}
    ids = []
    for i in range(jobs):
        body = {"name": f"bench-{i:02d}", "commands": [["true"]], "schedule": "0 0 1 1 *"}
        resp = requests.post(f"{server.url}/api/v1/jobs", json=body, headers=headers, timeout=10)
        ids.append(resp.json()["id"])
    now = datetime.now(UTC).replace(tzinfo=None)
    rng = random.Random(7)
    rows = []
    for n in range(runs):
        slot = now - timedelta(seconds=86000 * n / runs + 60)
        rows.append(_run_row(n, ids[n % jobs], slot, rng, running=n < jobs // 4))
    db = sqlite3.connect(server.db.removeprefix("sqlite:///"), timeout=30)
    with db:
        db.executemany(
            "INSERT INTO job_run (job_id, scheduled_at, run_id, trigger, attempt, status, "
            "started_at, completed_at, reason, behind_schedule, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    db.close()


STEP_JS = """
([start, end]) => {
  const g = window.itineraryGantt, t0 = performance.now(), drawn = g.whenDrawn();
  g.setView(start, end);
  return drawn.then(() => performance.now() - t0);
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--range", default="24h", help="the page's range, e.g. 2h for a screenshot")
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    parser.add_argument("--screenshot", help="also save the page as this PNG (docs/ui-history.png)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = start_server(Path(tempfile.mkdtemp()))
    try:
        seed(server, args.jobs, args.runs)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            tab = open_tab(browser, server.url, args.theme)
            sign_in(tab, server.tokens["admin"])
            tab.page.set_viewport_size({"width": 1600, "height": 1000})
            t = time.monotonic()
            tab.page.goto(f"{server.url}/history?range={args.range}")
            tab.page.wait_for_selector("#gantt[data-ready]", timeout=60000)
            first_draw = tab.page.evaluate(
                "performance.now() - performance.getEntriesByType('navigation')[0].startTime"
            )
            wall = (time.monotonic() - t) * 1000
            data_start, data_end = tab.page.evaluate(
                "performance.getEntriesByType('resource')"
                ".filter(e => e.name.includes('/history/data.json'))"
                ".map(e => [e.requestStart, e.responseEnd])[0]"
            )
            shown = tab.page.evaluate(
                "window.itineraryGantt.chart.getOption().series[0].data.length"
            )
            drawn = tab.page.evaluate("window.itineraryGantt.items().length")
            if args.screenshot:
                tab.page.set_viewport_size({"width": 1280, "height": 800})
                tab.page.wait_for_timeout(500)
                tab.page.screenshot(path=args.screenshot, full_page=True)
            now = tab.page.evaluate("Date.now()")
            steps = []
            width = 6 * 3600 * 1000
            for i in range(args.steps):
                if i % 2:  # pan
                    end = now - (i + 1) * width // 4
                else:  # zoom: narrower and narrower
                    width = max(60000, width // 2)
                    end = now - i * 600000
                steps.append(tab.page.evaluate(STEP_JS, [end - width, end]))
            in_order = [round(s) for s in steps]
            steps.sort()
            print(  # noqa: T201
                json.dumps(
                    {
                        "bars": shown,
                        "drawn": drawn,
                        "jobs": args.jobs,
                        "first_draw_ms": round(first_draw),
                        "first_draw_wall_ms": round(wall),
                        "data_asked_ms": round(data_start),
                        "data_loaded_ms": round(data_end),
                        "zoom_p50_ms": round(steps[len(steps) // 2], 1),
                        "zoom_p99_ms": round(steps[min(len(steps) - 1, int(len(steps) * 0.99))], 1),
                        "zoom_max_ms": round(steps[-1], 1),
                        "steps_ms": in_order,
                    }
                )
            )
            browser.close()
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=30)


if __name__ == "__main__":
    main()
