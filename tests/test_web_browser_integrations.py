"""Settings → Integrations in a real Chromium against a real Itinerary (see tests/browser.py).

An admin creates a Slack integration pointed at a loopback receiver (a separate
process answering as Slack does), first meeting the inline error for the
missing URL, then sends a test from the list and reads the receiver's answer
without a reload; axe passes and screenshots are taken light, dark and narrow.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import (
    Tab,
)

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]
# Answers every POST as a Slack incoming webhook does (200, text "ok"), writing each body down.
RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
out = open(sys.argv[1], "a")
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out.write(body.decode() + "\\n"); out.flush()
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    seen = tmp_path_factory.mktemp("slack") / "seen.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(seen)], stdout=subprocess.PIPE, text=True
    )
    port = proc.stdout.readline().strip()  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    proc.terminate()
    proc.wait(timeout=10)


def test_it_creates_a_slack_integration_and_sends_a_test(
    admin: Tab, receiver: tuple[str, Path]
) -> None:
    url, seen = receiver
    name = f"e2e-slack-{admin.theme}"
    admin.go("/running")
    admin.page.click("nav >> text=Settings")
    admin.page.click("text=New integration")
    admin.page.fill("#f-name", name)
    admin.expect_status(422)
    admin.page.click("text=Create integration")
    assert admin.page.locator("#err-config-url").is_visible()
    admin.audit("integration-form-errors")
    admin.page.fill("#f-url", f"{url}/services/T000/B000/e2eSECRETtoken{admin.theme}")
    admin.page.click("text=Create integration")
    admin.page.wait_for_url(re.compile(r".*/settings/integrations$"))
    row = admin.page.locator("tr", has_text=name)
    row.locator("button:has-text('Send test')").click()
    row.locator(".test-slot >> text=Test delivered").wait_for(timeout=15000)
    assert "HTTP 200" in row.inner_text() and "ok" in row.inner_text()
    assert "e2eSECRETtoken" not in admin.page.content()
    texts = [json.loads(line)["text"] for line in seen.read_text().splitlines()]
    assert any(t.startswith("Itinerary test message") for t in texts)
    admin.audit("integrations")
    admin.go(f"/settings/integrations/{name}/edit")
    admin.audit("integration-edit")


def test_it_passes_axe_on_the_pagerduty_new_relic_and_custom_forms(admin: Tab) -> None:
    for kind in ("pagerduty", "newrelic", "custom"):
        admin.go(f"/settings/integrations/new?type={kind}")
        assert admin.page.locator("h1", has_text="integration").is_visible()
        admin.audit(f"integration-form-{kind}")
