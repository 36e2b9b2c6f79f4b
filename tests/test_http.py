import json
from io import BytesIO

import gevent

from itinerary import config as cfg
from itinerary import http
from itinerary.context import Context


def call(app, path: str) -> tuple[int, dict]:
    status: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "wsgi.input": BytesIO(),
        "SERVER_NAME": "t",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    return int(status[0].split()[0]), json.loads(body)


def make(checks) -> Context:
    ctx = Context(config=cfg.load(None, {}), database=None, queues=None, clock=None)
    ctx.readiness.update(checks)
    return ctx


def test_it_is_alive_whatever_the_checks_say():
    app = http.make_root(make({"db": lambda: (False, "down")}))
    assert call(app, "/healthz") == (200, {"status": "alive"})


def test_it_is_ready_when_every_check_passes():
    app = http.make_root(make({"db": lambda: (True, ""), "loop": lambda: (True, "")}))
    status, body = call(app, "/readyz")
    assert status == 200 and body["checks"] == {"db": "ok", "loop": "ok"}


def test_it_says_why_it_is_not_ready():
    app = http.make_root(make({"db": lambda: (True, ""), "schema": lambda: (False, "002 pending")}))
    status, body = call(app, "/readyz")
    assert status == 503
    assert body["reason"] == "schema: 002 pending"


def test_a_check_that_raises_or_hangs_is_a_reason_not_a_crash(monkeypatch):
    monkeypatch.setattr(http, "READY_CHECK_TIMEOUT_S", 0.05)

    def hang():
        gevent.sleep(10)

    def boom():
        raise RuntimeError("no route")

    status, body = call(http.make_root(make({"a": hang, "b": boom})), "/readyz")
    assert status == 503
    assert body["checks"] == {"a": "no answer within 0.05s", "b": "RuntimeError: no route"}


def test_unknown_paths_get_a_json_404():
    status, body = call(http.make_root(make({})), "/nope")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_metrics_need_a_token_off_loopback():
    ctx = make({})
    ctx.config = cfg.load(None, {"ITINERARY_HOST": "0.0.0.0", "ITINERARY_ALLOWED_HOSTS": "t"})
    status, body = call(http.make_root(ctx), "/metrics")
    assert status == 401 and body["error"]["code"] == "unauthorized"
