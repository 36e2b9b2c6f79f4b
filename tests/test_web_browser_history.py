"""The run-history Gantt and the job page in a real Chromium against a real Itinerary.

Runs are started through the API (a real local process each, `sleep N`), then watched
on /history and /jobs/{id}: a bar with its state's class and colour that turns from
running to succeeded without a reload, a click to the run page, each filter changing
the URL and the bars, the job page's tiles, charts and slot strip (a skipped slot's
reason), text-only tooltips, axe in both themes and screenshots (tests/browser.py).
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.browser import (
    Server,
    Tab,
)

pytestmark = pytest.mark.timeout(240)
SLEEP = ["sh", "-c", "echo start $1; sleep $1; echo done", "sh"]
XSS = "<img src=x onerror=window.pwned=1>"


def _api(server: Server, method: str, path: str, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {server.tokens['admin']}"}
    resp = requests.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=10, **kw)
    assert resp.status_code < 300, resp.text
    return resp.json() if resp.content else None


def _job(server: Server, name: str, **fields: Any) -> int:
    body = {
        "name": name,
        "commands": [SLEEP],
        "args": ["1"],
        "schedule": "0 0 1 1 *",
        "manualRunModifiableFields": ["args"],
        **fields,
    }
    return _api(server, "POST", "/jobs", json=body)["id"]


def _run(server: Server, job_id: int, seconds: int) -> str:
    return _api(server, "POST", f"/runs/{job_id}", json={"args": [str(seconds)]})["runId"]


def _wait_state(server: Server, run_id: str, state: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {server.tokens['admin']}"}
    while time.monotonic() < deadline:  # 404 until the syncer has written the new run
        resp = requests.get(f"{server.url}/api/v1/runs/{run_id}", headers=headers, timeout=10)
        if resp.status_code == 200 and resp.json()["state"] == state:
            return
        time.sleep(0.2)
    raise AssertionError(f"{run_id} never became {state}")


# The Gantt is a canvas: what it drew comes from the page's `itineraryGantt` hook (each run's
# state, colour, row and position), and the colour is read back from the canvas's pixels.
PAINTED_JS = """([id, token]) => {
  const g = window.itineraryGantt, xy = g.at(id), c = g.chart.getDom().querySelector('canvas');
  const box = c.getBoundingClientRect(), k = c.width / box.width;
  const x = Math.round((xy[0] - box.left) * k), y = Math.round((xy[1] - box.top) * k);
  const w = Math.min(x, Math.round(16 * k));
  const strip = c.getContext('2d').getImageData(x - w, y, w + 1, 1).data;
  const probe = document.createElement('span');
  probe.style.color = getComputedStyle(document.documentElement).getPropertyValue(token);
  document.body.appendChild(probe);
  const want = getComputedStyle(probe).color.match(/\\d+/g).map(Number); probe.remove();
  for (let i = 0; i < strip.length; i += 4)
    if ([0, 1, 2].every(j => Math.abs(strip[i + j] - want[j]) <= 2)) return true;
  return false;
}"""


def _paints(tab: Tab, run_id: str, token: str) -> None:
    """Wait until the run's bar shows the token's colour on the canvas.

    It reads the 16 px left of the bar's middle: the middle of a running bar is close to
    the now line, which may cover it. The canvas is painted on an animation frame after
    the chart takes its data, so the pixels may lag the items on a busy machine.
    """
    tab.page.wait_for_function(PAINTED_JS, arg=[run_id, token], timeout=5000)


def _drawn(tab: Tab, run_id: str, state: str, timeout: float = 10000) -> None:
    tab.page.wait_for_function(
        "([id, s]) => window.itineraryGantt.items().some(d => d.id === id && d.state === s)",
        arg=[run_id, state],
        timeout=timeout,
    )


def _bars(tab: Tab) -> int:
    tab.page.wait_for_selector("#gantt[data-ready]")
    return tab.page.evaluate("window.itineraryGantt.items().length")


def _at(tab: Tab, run_id: str) -> tuple[float, float]:
    tab.page.locator("#gantt").scroll_into_view_if_needed()
    return tab.page.evaluate("id => window.itineraryGantt.at(id)", run_id)


def test_it_draws_a_run_that_turns_from_running_to_succeeded_and_opens_it(
    admin: Tab, server: Server
) -> None:
    name = f"e2e-gantt-{admin.theme}"
    job_id = _job(server, name, tags=["gantt"])
    run_id = _run(server, job_id, 12)  # still running when the page has drawn it
    _wait_state(server, run_id, "running")
    admin.go(f"/history?range=5m&name={name}")
    _drawn(admin, run_id, "running")
    _paints(admin, run_id, "--st-running")
    _drawn(admin, run_id, "succeeded", timeout=40000)  # a poll, no reload
    _paints(admin, run_id, "--st-succeeded")
    assert admin.page.evaluate("performance.getEntriesByType('navigation').length") == 1
    admin.audit("history")
    admin.page.mouse.click(*_at(admin, run_id))
    admin.page.wait_for_url(re.compile(rf".*/runs/{run_id}$"))


def test_it_stacks_overlapping_runs_of_a_job_and_opens_one_by_keyboard(
    admin: Tab, server: Server
) -> None:
    name = f"e2e-stack-{admin.theme}"
    job_id = _job(server, name, constraints={"maxConcurrentRuns": 2})
    first, second = _run(server, job_id, 30), _run(server, job_id, 30)
    _wait_state(server, first, "running")
    _wait_state(server, second, "running")
    admin.go(f"/history?range=5m&name={name}")
    _drawn(admin, second, "running")
    rows = admin.page.evaluate("window.itineraryGantt.items().map(d => d.row).sort()")
    assert rows == [0, 1]  # one row each, so neither hides the other
    admin.page.focus("#gantt")
    admin.page.keyboard.press("ArrowDown")
    assert name in admin.page.inner_text("#gantt-tip")
    assert "State: running" in admin.page.inner_text("#gantt-said")
    admin.page.keyboard.press("Enter")
    admin.page.wait_for_url(re.compile(rf".*/runs/({first}|{second})$"))


def test_it_fetches_the_window_it_pans_to_and_labels_it_in_the_chosen_zone(
    admin: Tab, server: Server
) -> None:
    name = f"e2e-pan-{admin.theme}"
    run_id = _run(server, _job(server, name), 1)
    _wait_state(server, run_id, "succeeded")
    admin.go(f"/history?range=1h&name={name}")
    _drawn(admin, run_id, "succeeded")
    admin.page.select_option("#zone-select", "UTC")
    assert "UTC" in admin.page.get_attribute("#gantt", "aria-label")
    _, y = _at(admin, run_id)
    left = admin.page.locator("#gantt").bounding_box()["x"]
    admin.page.mouse.move(left + 150, y)  # the row's label: the full job name as a tooltip
    admin.page.wait_for_selector("#gantt-tip:not([hidden])")
    assert admin.page.inner_text("#gantt-tip").endswith(name)
    for _ in range(4):  # half a window each: two hours back, outside the loaded hour
        admin.page.click("[data-gantt=earlier]")
    admin.page.wait_for_url(re.compile(".*from=.*&to=.*"))
    admin.page.wait_for_function("() => window.itineraryGantt.items().length === 0")
    assert "range=" not in admin.page.url and f"name={name}" in admin.page.url


def test_it_changes_the_url_and_the_bars_with_each_filter(admin: Tab, server: Server) -> None:
    name = f"e2e-filter-{admin.theme}"
    job_id = _job(server, name, tags=["filters", "nightly"])
    short = _run(server, job_id, 1)
    _wait_state(server, short, "succeeded")
    admin.go(f"/history?range=1h&name={name}")
    assert _bars(admin) == 1

    def apply(field: str, value: str, expect_url: str, expect_bars: int) -> None:
        admin.page.fill(field, value)
        admin.page.click("#history-filters button[type=submit]")
        admin.page.wait_for_url(re.compile(".*" + re.escape(expect_url)))
        admin.page.wait_for_function(
            "n => window.itineraryGantt.items().length === n", arg=expect_bars
        )

    apply("#f-min", "1h", "min=1h", 0)
    apply("#f-min", "", "name=" + name, 1)
    apply("#f-max", "0s", "max=0s", 0)
    apply("#f-max", "", "name=" + name, 1)
    apply("#f-tags", "filters,nightly", "tags=filters%2Cnightly", 1)
    apply("#f-tags", "filters,absent", "tags=filters%2Cabsent", 0)
    apply("#f-tags", "", "name=" + name, 1)
    admin.page.check("#f-state-failed")
    apply("#f-name", name, "state=failed", 0)
    admin.page.uncheck("#f-state-failed")
    apply("#f-name", "no-such-job", "name=no-such-job", 0)
    apply("#f-name", name, "name=" + name, 1)
    admin.page.click("a[data-range='5m']")
    admin.page.wait_for_url(re.compile(".*range=5m.*"))
    admin.page.fill("#f-range", "")
    admin.page.fill("#f-from", "2020-01-01T00:00")
    apply("#f-to", "2020-01-02T00:00", "from=2020-01-01T00%3A00", 0)
    admin.page.fill("#f-from", "")
    apply("#f-to", "", "name=" + name, 1)
    before = admin.page.url
    admin.expect_status(400)
    admin.page.fill("#f-min", "fast")
    admin.page.click("#history-filters button[type=submit]")
    admin.page.wait_for_selector("#err-js-min")
    assert "not a duration" in admin.page.inner_text("#err-js-min")
    assert admin.page.url == before and _bars(admin) == 1  # the chart stays


def test_it_builds_tooltips_as_text(admin: Tab, server: Server) -> None:
    name = f"e2e-xss-{admin.theme}"
    job_id = _job(server, name, tags=[XSS])
    run_id = _run(server, job_id, 60)
    _wait_state(server, run_id, "running")
    _api(server, "DELETE", f"/runs/{run_id}?reason={quote(XSS)}")
    _wait_state(server, run_id, "killed")
    admin.go(f"/history?range=1h&name={name}&tags={quote(XSS)}")  # echoed in the tags field
    _drawn(admin, run_id, "killed")
    admin.page.mouse.move(*_at(admin, run_id))
    admin.page.wait_for_selector("#gantt-tip:not([hidden])")
    assert XSS in admin.page.inner_text("#gantt-tip")
    assert admin.page.input_value("#f-tags") == XSS
    assert admin.page.locator("main img").count() == 0
    assert admin.page.evaluate("window.pwned === undefined")


def test_it_shows_the_job_page_with_tiles_charts_and_a_skipped_slots_reason(
    admin: Tab, server: Server
) -> None:
    name = f"e2e-page-{admin.theme}"
    job_id = _job(server, name, constraints={"maxConcurrentRuns": 1})
    first = _run(server, job_id, 3)
    _wait_state(server, first, "running")
    second = _run(server, job_id, 1)
    _wait_state(server, second, "skipped")
    _wait_state(server, first, "succeeded")
    reason = _api(server, "GET", f"/runs/{second}")["reason"]
    admin.go(f"/jobs/{job_id}")
    admin.page.wait_for_selector(".charts[data-ready]")
    assert admin.page.inner_text("[data-tile=runs]") == "2"
    assert admin.page.inner_text("[data-tile=successRate]") == "100.0 %"
    assert admin.page.locator(".charts canvas").count() == 2
    slot = admin.page.locator(".strip .slot[data-state=skipped]")
    assert slot.count() == 1 and reason and reason in slot.get_attribute("title")
    admin.audit("job-overview")
    admin.go(f"/jobs/{job_id}/runs")
    admin.audit("job-runs")
    admin.go(f"/jobs/{job_id}/events")
    assert admin.page.locator("text=created by e2e-admin").count() == 1
    admin.audit("job-events")
