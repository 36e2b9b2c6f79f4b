"""preRunHook and postRunHook calls: one HTTP request (with retries) on the run's own greenlet.

A hook is the user's endpoint that must answer 200 for a run to start (pre) or
to count as succeeded (post). It is called from the run's orchestrator greenlet,
never from the scheduler loop or a cohort's start pass, and `requests` under
gevent waits on the socket without blocking the hub, so a slow hook delays only
its own run. A refused connection, a timeout or a 5xx is retried `retries` times
with a doubling pause on the clock; any other answer is final. The outcome keeps
the status and the first 500 bytes of the answer (never the hook's headers,
which may carry a token, nor the URL's query string).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from itinerary.durations import parse_duration

DEFAULT_TIMEOUT_S = 10.0
EXCERPT_BYTES = 500
FIRST_PAUSE_S, MAX_PAUSE_S = 1.0, 30.0

POOL = 100  # kept-alive connections per hook host (many runs of one minute call one hook)
_session = requests.Session()
_adapter = requests.adapters.HTTPAdapter(pool_connections=POOL, pool_maxsize=POOL)
_session.mount("http://", _adapter)
_session.mount("https://", _adapter)


@dataclass(frozen=True)
class HookResult:
    ok: bool
    status: int | None  # None: no answer (refused, timed out)
    excerpt: str  # the answer's first 500 bytes, or the error
    attempts: int

    def reason(self, name: str) -> str:
        """`preRunHook: 404 not here` — what the run's reason says."""
        said = self.excerpt.strip().replace("\n", " ")[:200]
        return f"{name}: {self.status if self.status is not None else 'no answer'} {said}".strip()

    def details(self, url: str) -> dict[str, Any]:
        return {
            "url": safe_url(url),
            "status": self.status,
            "body": self.excerpt,
            "attempts": self.attempts,
        }


def safe_url(url: str) -> str:
    """The URL without credentials or query string (which often carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def call(
    config: dict[str, Any], body: dict[str, Any], pause: Callable[[float], bool]
) -> HookResult:
    """Call the hook until it answers 200, gives a final answer or runs out of retries.

    `pause(seconds)` waits between tries on the run's clock; False (the run was cancelled
    or released meanwhile) ends the retries with the last answer.
    """
    timeout = parse_duration(config.get("timeout", DEFAULT_TIMEOUT_S))
    method = str(config.get("method", "POST")).upper()
    headers = dict(config.get("headers") or {})
    retries = int(config.get("retries", 0))
    result = HookResult(False, None, "", 0)
    for attempt in range(1, retries + 2):
        result = _once(config["url"], method, headers, body, timeout, attempt)
        final = result.status is not None and result.status < 500 and result.status != 429
        if result.ok or final or attempt > retries:
            return result
        if not pause(min(MAX_PAUSE_S, FIRST_PAUSE_S * 2 ** (attempt - 1))):
            return result
    return result


def _once(
    url: str, method: str, headers: dict[str, str], body: dict[str, Any], timeout: float, n: int
) -> HookResult:
    try:
        kwargs: dict[str, Any] = {"params": _flat(body)} if method == "GET" else {"json": body}
        with _session.request(
            method,
            url,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            **kwargs,
        ) as resp:
            raw = resp.raw.read(EXCERPT_BYTES, decode_content=True) or b""
            text = raw.decode("utf-8", "replace")
            return HookResult(resp.status_code == 200, resp.status_code, text, n)
    except requests.Timeout:
        return HookResult(False, None, f"timed out after {timeout:g}s", n)
    except requests.RequestException as exc:
        return HookResult(False, None, f"{type(exc).__name__}: {_short(exc)}", n)


def _short(exc: Exception) -> str:
    """A connection error's cause without the pool's noise (and without any query string)."""
    text = str(exc)
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.split("?", 1)[0][:200]


def _flat(body: dict[str, Any]) -> dict[str, str]:
    """A GET hook gets the context as query parameters."""
    return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in body.items()}
