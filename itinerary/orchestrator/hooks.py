"""preRunHook and postRunHook calls: one HTTP request (with retries) on the run's own greenlet.

A hook is the user's endpoint that must answer 200 for a run to start (pre) or
to count as succeeded (post). It is called from the run's orchestrator greenlet,
never from the scheduler loop or a cohort's start pass, and its socket under
gevent waits without blocking the hub, so a slow hook delays only its own run.
A refused connection, a timeout or a 5xx is retried `retries` times with a
doubling pause on the clock; any other answer is final. The outcome keeps the
status and the first 500 bytes of the answer (never the hook's headers, which
may carry a token, nor the URL's query string).

urllib3 directly rather than `requests`: 1,000 hooks due at one instant all run
on the one hub, and `requests` made each call cost more CPU for nothing a hook
needs. An answer read to its end leaves its connection kept alive for the next
call to that host (urllib3 checks it is still open before reusing it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from itinerary.durations import parse_duration

DEFAULT_TIMEOUT_S = 10.0
EXCERPT_BYTES = 500
FIRST_PAUSE_S, MAX_PAUSE_S = 1.0, 30.0

POOL = 100  # kept-alive connections per hook host (many runs of one minute call one hook)
HOSTS = 100  # hook hosts whose connections are kept (the least recently used is let go)


class _Keeping:
    """A host's pool that lets a connection beyond its size go quietly.

    More calls than POOL at once to one host is the normal case (a minute's runs of many
    jobs sharing one hook); urllib3 would log a warning for each connection it cannot keep.
    """

    pool: Any

    def _put_conn(self, conn: Any) -> None:
        if conn is not None and self.pool is not None and self.pool.full():
            conn.close()
            return
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_Keeping, HTTPConnectionPool):
    pass


class _HTTPSPool(_Keeping, HTTPSConnectionPool):
    pass


_pool = urllib3.PoolManager(num_pools=HOSTS, maxsize=POOL, block=False, retries=False)
_pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
_DEFAULT_HEADERS = {"User-Agent": "itinerary-hook", "Accept": "*/*"}


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
    sent = urllib3.HTTPHeaderDict(_DEFAULT_HEADERS)
    data = None
    if method == "GET":  # a GET hook gets the context as query parameters
        url = _with_query(url, _flat(body))
    else:
        sent["Content-Type"] = "application/json"
        data = json.dumps(body, allow_nan=False).encode()
    sent.update(headers)
    try:
        resp = _pool.request(
            method,
            url,
            body=data,
            headers=sent,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            redirect=False,
            preload_content=False,
        )
        try:
            raw = resp.read(EXCERPT_BYTES, decode_content=True) or b""
        finally:
            if not resp.closed:  # more than the excerpt: not worth reading, nor the connection
                resp.close()
            resp.release_conn()
        return HookResult(resp.status == 200, resp.status, raw.decode("utf-8", "replace"), n)
    except NewConnectionError as exc:  # before TimeoutError: urllib3 derives it from that
        return HookResult(False, None, f"ConnectionError: {_short(exc)}", n)
    except TimeoutError:
        return HookResult(False, None, f"timed out after {timeout:g}s", n)
    except (HTTPError, OSError, ValueError) as exc:  # ValueError: a URL or header it refused
        return HookResult(False, None, f"{type(exc).__name__}: {_short(exc)}", n)


def _short(exc: Exception) -> str:
    """A connection error's cause without the pool's noise (and without any query string)."""
    text = str(exc)
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.split("?", 1)[0][:200]


def _with_query(url: str, params: dict[str, str]) -> str:
    """The URL with `params` added to any query string it has already."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _flat(body: dict[str, Any]) -> dict[str, str]:
    """The context as query parameters (a list joined with commas)."""
    return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in body.items()}
