"""Vendored front-end files match their manifest; nothing is loaded from another origin."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.api_fakes import Api, api_fixture  # noqa: F401 (the api fixture)
from tests.web_fakes import Browser

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"


def _manifest() -> list[list[str]]:
    lines = (VENDOR / "MANIFEST.txt").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def test_it_vendors_files_whose_hashes_match_the_manifest() -> None:
    entries = _manifest()
    assert [e[:3] for e in entries] == [
        ["htmx-2.0.11.min.js", "htmx.org", "2.0.11"],
        ["echarts-6.1.0.min.js", "echarts", "6.1.0"],
        ["uPlot-1.6.32.min.js", "uplot", "1.6.32"],
        ["uPlot-1.6.32.min.css", "uplot", "1.6.32"],
    ]
    for name, _package, version, sha256, _licence in entries:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == sha256, name
        assert (VENDOR / "LICENSES" / f"{name.split('.min')[0]}.LICENSE").exists(), name
        assert version in name


def test_it_loads_nothing_from_another_origin() -> None:
    own = [p for d in ("templates", "static") for p in (ROOT / d).rglob("*") if p.is_file()]
    own = [p for p in own if "vendor" not in p.parts]
    assert own
    for path in own:
        text = path.read_text()
        assert not re.search(r"""(src|href|action|url)\s*[=(]\s*["']?(https?:)?//""", text), path


def test_it_serves_static_files_cached_for_a_year_and_nothing_outside(api: Api) -> None:
    browser = Browser(api)
    resp = browser.get("/static/vendor/htmx-2.0.11.min.js")
    assert resp.status_code == 200 and "immutable" in resp.headers["Cache-Control"]
    assert browser.get("/static/../itinerary/auth.py").status_code in (403, 404)
