"""The root WSGI application: health, readiness, metrics, the web UI, the API under /api/v1.

Every request passes the Host and Origin checks of `itinerary/guard.py` first
(DNS rebinding, cross-site writes); `/healthz` and `/readyz` are exempt.

`/healthz` answers as long as the process serves HTTP. `/readyz` runs every
readiness check of the context (database reachable, schema current, syncer
writing, scheduler loop ticking) and answers 503 with the reasons otherwise, so
a load balancer or Kubernetes stops sending traffic to a replica that cannot
do its work.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import bottle
import gevent

from itinerary.auth import authorize
from itinerary.context import Context
from itinerary.errors import ApiError
from itinerary.guard import Guard
from itinerary.metrics import render
from itinerary.web import install as install_web
from itinerary.web.pipeline import error_page
from itinerary.web.render import wants_html

log = logging.getLogger(__name__)
READY_CHECK_TIMEOUT_S = 3.0
API_PREFIX = "/api/v1"


def _json(status: int, body: dict[str, Any]) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(
        status=status,
        body=json.dumps(body),
        headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
    )


def run_checks(ctx: Context) -> tuple[bool, dict[str, str]]:
    """Every readiness check, each bounded in time; (all ready, name -> 'ok' or reason)."""
    results: dict[str, str] = {}
    for name, check in ctx.readiness.items():
        try:
            with gevent.Timeout(READY_CHECK_TIMEOUT_S):
                ok, reason = check()
        except gevent.Timeout:
            ok, reason = False, f"no answer within {READY_CHECK_TIMEOUT_S:g}s"
        except Exception as exc:  # a failing check is a reason, not a crash
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        results[name] = "ok" if ok else reason
    return all(v == "ok" for v in results.values()), results


def make_root(ctx: Context, api: bottle.Bottle | None = None) -> Any:
    """The process's WSGI application; `api` (when given) answers under /api/v1."""
    root = bottle.Bottle()

    @root.get("/healthz")
    def healthz() -> bottle.HTTPResponse:
        return _json(200, {"status": "alive"})

    @root.get("/readyz")
    def readyz() -> bottle.HTTPResponse:
        ready, checks = run_checks(ctx)
        if ready:
            return _json(200, {"status": "ready", "checks": checks})
        reasons = "; ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        return _json(503, {"status": "unready", "reason": reasons, "checks": checks})

    @root.get("/metrics")
    def metrics() -> bottle.HTTPResponse:
        # Job names are in the metrics: off loopback a scraper needs a viewer token,
        # as for the API (Prometheus: `authorization: {credentials_file: ...}`).
        try:
            authorize(ctx, bottle.request.get_header("Authorization"), "viewer")
        except ApiError as exc:
            return _json(exc.status, exc.body())
        body, content_type = render(ctx.metrics)
        return bottle.HTTPResponse(body=body, headers={"Content-Type": content_type})

    @root.get("/")
    def index() -> bottle.HTTPResponse:
        if wants_html(bottle.request):  # a browser gets the UI, API clients the links
            return bottle.HTTPResponse(status=303, headers={"Location": "/running"})
        return _json(
            200,
            {
                "name": "itinerary",
                "links": {
                    "api": "/api/v1",
                    "openapi": "/api/v1/openapi.json",
                    "health": "/healthz",
                    "ready": "/readyz",
                    "metrics": "/metrics",
                },
            },
        )

    @root.error(404)
    def not_found(err: bottle.HTTPError) -> Any:
        if wants_html(bottle.request):
            return error_page(404, f"There is no page at {bottle.request.path}.")
        bottle.response.content_type = "application/json"
        return json.dumps({"error": {"code": "not_found", "message": "no such page"}})

    @root.error(405)
    def not_allowed(err: bottle.HTTPError) -> Any:
        if wants_html(bottle.request):
            return error_page(405, f"{bottle.request.method} is not allowed here.")
        bottle.response.content_type = "application/json"
        return json.dumps({"error": {"code": "method_not_allowed", "message": "not allowed"}})

    @root.error(500)
    def server_error(err: bottle.HTTPError) -> Any:
        log.error(
            "unhandled error on %s: %s", bottle.request.path, err.exception, exc_info=err.exception
        )
        if wants_html(bottle.request):
            return error_page(500, "Internal error; the server log has the details.")
        bottle.response.content_type = "application/json"
        return json.dumps({"error": {"code": "internal", "message": "internal error; see logs"}})

    install_web(root, ctx)

    app = root if api is None else _prefixed(root, API_PREFIX, api)
    return Guard(app, ctx.config.allowed_host_list)


def _prefixed(root: Any, prefix: str, app: Any) -> Any:
    """Send `prefix` and everything below it to `app`, the rest to `root` (a WSGI mount)."""

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == prefix or path.startswith(prefix + "/"):
            environ = dict(environ)
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix) :] or "/"
            return app(environ, start_response)
        return root(environ, start_response)

    return dispatch
