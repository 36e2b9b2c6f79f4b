"""A real Itinerary and a real Chromium for the browser tests (tests/test_web_browser.py).

The server is `itinerary.py` in a subprocess on 127.0.0.1, port 0, with
`--require-auth` so the same server serves an admin and a viewer. Chromium is
Debian's (`apt-get install chromium`), driven by Playwright's Python API through
`executable_path`; nothing is downloaded. Every page refuses requests to any
other origin and records console errors; `Tab.check()` fails the test on either.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/lib/chromium/chromium")  # the real binary; /usr/bin/chromium is a script
ARTIFACTS = ROOT / "test-artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
]
VIEWPORTS = ((1280, 800), (390, 844))


def need_chromium() -> None:
    """Skip with the reason when Chromium or Playwright is missing; fail under CI's flag."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} not found: apt-get install -y chromium"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed: pip install -r requirements-dev.txt"
    if missing:
        if os.environ.get("ITINERARY_REQUIRE_BROWSER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    proc: subprocess.Popen[str]
    db: str


def _cli(db: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "itinerary.py"), *args, "--db-dsn", db],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def start_server(tmp: Path) -> Server:
    db = f"sqlite:///{tmp}/e2e.db"
    _cli(db, "migrate")
    made = {
        r: _cli(db, "token", "create", "--role", r, "--name", f"e2e-{r}")
        for r in ("admin", "viewer")
    }
    log = open(tmp / "server.log", "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "itinerary.py"),
            "--port",
            "0",
            "--require-auth",
            "--db-dsn",
            db,
            "--log-dir",
            str(tmp / "logs"),
            "--executor",
            "local",
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        cwd=tmp,
    )
    deadline = time.monotonic() + 30
    url = None
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        found = re.search(r"running at (http://\S+)", line)
        url = found.group(1) if found else None
        if not line and proc.poll() is not None:
            break
    assert url, f"the server did not start; see {tmp / 'server.log'}"
    while time.monotonic() < deadline:
        if requests.get(url + "/readyz", timeout=2).status_code == 200:
            return Server(url, made, proc, db)
        time.sleep(0.2)
    raise AssertionError("the server never became ready")


@dataclass
class Tab:
    """A page in its own context, watched for other origins and console errors."""

    page: Any
    origin: str
    theme: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # statuses a test provokes on purpose

    def go(self, path: str) -> Any:
        resp = self.page.goto(self.origin + path)
        self.page.wait_for_load_state("networkidle")
        return resp

    def check(self) -> None:
        assert not self.foreign, f"requests to other origins: {self.foreign}"
        unexpected = [e for e in self.errors if not any(x in e for x in self.expected)]
        assert not unexpected, f"console errors: {unexpected}"

    def expect_status(self, status: int) -> None:
        """Chromium logs a page answered with `status` as a console error: this one is wanted."""
        self.expected.append(f"the server responded with a status of {status} ")

    def audit(self, name: str) -> None:
        """axe (no serious or critical violation), then screenshots at both sizes."""
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(self.page)
        bad = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, f"{name} ({self.theme}): {bad}"
        ARTIFACTS.mkdir(exist_ok=True)
        size = self.page.viewport_size
        for width, height in VIEWPORTS:
            self.page.set_viewport_size({"width": width, "height": height})
            self.page.screenshot(
                path=str(ARTIFACTS / f"{name}-{self.theme}-{width}x{height}.png"), full_page=True
            )
        self.page.set_viewport_size(size)


def open_tab(browser: Any, origin: str, theme: str) -> Tab:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme=theme, timezone_id="Europe/Paris"
    )
    page = context.new_page()
    page.set_default_timeout(10000)
    tab = Tab(page, origin, theme)

    def route(r: Any) -> None:
        if r.request.url.startswith(origin + "/") or r.request.url == origin:
            r.continue_()
        else:
            tab.foreign.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    return tab


def sign_in(tab: Tab, token: str) -> None:
    tab.go("/login")
    tab.page.fill("#token", token)
    tab.page.click("button[type=submit]")
    tab.page.wait_for_url(re.compile(r".*/running$"))


# The fixtures every browser test module uses: one server and one Chromium per module,
# and an admin's tab per test, in light and dark (a plugin of tests/conftest.py).


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    need_chromium()
    started = start_server(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    yield started
    started.proc.terminate()
    started.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def chromium(server: Server) -> Any:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture(params=["light", "dark"])
def admin(request: pytest.FixtureRequest, server: Server, chromium: Any) -> Any:
    tab = open_tab(chromium, server.url, request.param)
    sign_in(tab, server.tokens["admin"])
    yield tab
    tab.check()
    tab.page.context.close()
