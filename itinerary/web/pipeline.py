"""What every page shares: the visitor, role checks, CSRF and origin checks, errors.

`page(ctx, role, write=...)` wraps a handler `fn(req, **path)`. It finds the
visitor (or sends them to /login), refuses a role that is too low (403 page,
or for htmx a 403 the page shows as a toast), checks the CSRF token and that a
write comes from this origin, and turns failures into HTML error pages: 404
and 409 from the shared operations, 503 when the database is unavailable, 500
with a request id that is also in the log line.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import bottle
import peewee as pw
from playhouse.pool import MaxConnectionsExceeded

from itinerary.context import Context
from itinerary.errors import ApiError
from itinerary.web import render, sessions
from itinerary.web.sessions import Refused, Visitor

log = logging.getLogger(__name__)
FLASH_COOKIE = "itinerary_flash"
TITLES = {
    400: "Bad request",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "The database is unavailable",
}


@dataclass
class Req:
    """What a page handler gets."""

    ctx: Context
    request: bottle.BaseRequest
    visitor: Visitor
    now: datetime

    @property
    def htmx(self) -> bool:
        return self.request.get_header("HX-Request") == "true"

    def base(self, **values: Any) -> dict[str, Any]:
        """The values every template needs (base.html)."""
        return {
            "visitor": self.visitor,
            "can": self.visitor.perms,
            "path": self.request.path,
            "now": self.now,
            "flash": unquote(self.request.get_cookie(FLASH_COOKIE) or "")[:300],
            "theme": theme_of(self.request),
            **values,
        }

    def render(self, template: str, status: int = 200, **values: Any) -> bottle.HTTPResponse:
        return render.html(render.render(template, **self.base(**values)), status)


def see_other(location: str, flash: str = "") -> bottle.HTTPResponse:
    """303 to `location`, with a one-time message for the next page (a cookie, not the URL,
    so no link can make the UI say something it did not)."""
    response = bottle.HTTPResponse(status=303, headers={"Location": location})
    if flash:
        response.set_cookie(FLASH_COOKIE, quote(flash), httponly=True, samesite="Lax", path="/")
    return response


def theme_of(request: bottle.BaseRequest) -> str:
    theme = request.get_cookie("theme")
    return theme if theme in ("light", "dark") else "system"


def error_page(
    status: int, message: str, visitor: Visitor | None = None, headers: dict[str, str] | None = None
) -> bottle.HTTPResponse:
    body = render.render(
        "errors/error.html",
        status=status,
        title=TITLES.get(status, "Error"),
        message=message,
        visitor=visitor,
        can=visitor.perms if visitor else {},
        path="",
        flash="",
        theme=theme_of(bottle.request),
    )
    return render.html(body, status, headers)


def _fragment_error(status: int, message: str) -> bottle.HTTPResponse:
    """For htmx: no swap (htmx config), the message shown as a toast by itinerary.js."""
    return bottle.HTTPResponse(
        body=message,
        status=status,
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "X-Itinerary-Message": quote(message),
            **render.PAGE_HEADERS,
        },
    )


def _login_redirect(request: bottle.BaseRequest) -> bottle.HTTPResponse:
    target = "/login?next=" + quote(
        request.fullpath + ("?" + request.query_string if request.query_string else ""), safe="/"
    )
    if request.get_header("HX-Request") == "true":
        return bottle.HTTPResponse(status=401, headers={"HX-Redirect": target})
    return bottle.HTTPResponse(status=303, headers={"Location": target})


def page(
    ctx: Context, role: str = "viewer", *, write: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def handle(**path: str) -> Any:
            request = bottle.request
            htmx = request.get_header("HX-Request") == "true"
            visitor: Visitor | None = None
            try:
                now = ctx.clock.now()
                visitor = sessions.identify(ctx, request.cookies, now)
                if visitor is None:
                    return _login_redirect(request)
                if write:  # guard.py has refused writes from other origins already
                    sent = request.forms.get(sessions.CSRF_FIELD) or request.get_header(
                        sessions.CSRF_HEADER
                    )
                    sessions.check_csrf(visitor, sent)
                if not visitor.can(role):
                    raise Refused(
                        403, f"This needs the {role} role; you are signed in as {visitor.role}."
                    )
                out = fn(Req(ctx, request, visitor, now), **path)
            except (Refused, ApiError) as exc:
                if htmx:
                    out = _fragment_error(exc.status, exc.message)
                else:
                    out = error_page(exc.status, exc.message, visitor)
            except (pw.OperationalError, pw.InterfaceError, MaxConnectionsExceeded) as exc:
                log.warning("database unavailable for %s: %s", request.path, exc)
                message = "The database is unavailable; retry in a moment."
                out = _fragment_error(503, message) if htmx else error_page(503, message, visitor)
            except bottle.HTTPResponse:
                raise
            except Exception:
                request_id = secrets.token_hex(6)
                log.exception("page %s failed (request %s)", request.path, request_id)
                message = f"Internal error; the server log has the details (request {request_id})."
                out = _fragment_error(500, message) if htmx else error_page(500, message, visitor)
            if isinstance(out, str):
                out = render.html(out)
            if request.get_cookie(FLASH_COOKIE) and out.status_code == 200 and not htmx:
                out.delete_cookie(FLASH_COOKIE, path="/")  # shown once
            if visitor is not None and visitor.new_csrf:
                out.set_cookie(
                    sessions.CSRF_COOKIE,
                    visitor.csrf,
                    httponly=True,
                    samesite="Lax",
                    path="/",
                    secure=request.urlparts.scheme == "https",
                )
            return out

        return handle

    return wrap


def _static(path: str) -> bottle.HTTPResponse:
    response = bottle.static_file(path, root=str(render.STATIC))
    if response.status_code == 200:
        response.set_header("Cache-Control", "public, max-age=31536000, immutable")
        response.set_header("X-Content-Type-Options", "nosniff")
    return response


def install(root: bottle.Bottle, ctx: Context) -> None:
    """Static files, sign-in and sign-out."""
    limiter = sessions.LoginLimiter()
    root.route("/static/<path:path>", "GET", _static)

    def login_page(req_values: dict[str, Any], status: int = 200) -> bottle.HTTPResponse:
        body = render.render(
            "auth/login.html", visitor=None, can={}, path="/login", flash="", **req_values
        )
        return render.html(body, status)

    @root.get("/login")
    def login_form() -> Any:
        request = bottle.request
        next_url = _safe_next(request.query.get("next"))
        visitor = sessions.identify(ctx, request.cookies, ctx.clock.now())
        if visitor is not None and visitor.mode != "session":
            return bottle.HTTPResponse(status=303, headers={"Location": next_url})
        return login_page({"next": next_url, "error": ""})

    @root.post("/login")
    def login() -> Any:
        request = bottle.request
        next_url = _safe_next(request.forms.get("next"))
        client = request.environ.get("REMOTE_ADDR", "?")
        clock_s = ctx.clock.now().timestamp()
        wait = limiter.wait_s(client, clock_s)
        if wait > 0:
            message = f"Too many attempts, try again in {int(wait) + 1} s."
            return login_page({"next": next_url, "error": message}, 429)
        token = request.forms.get("token") or ""
        sid = sessions.sign_in(ctx, token, ctx.clock.now()) if token.strip() else None
        if sid is None:
            limiter.failed(client, clock_s)
            return login_page({"next": next_url, "error": "Unknown or revoked token."}, 401)
        response = bottle.HTTPResponse(status=303, headers={"Location": next_url})
        response.set_cookie(
            sessions.COOKIE,
            sid,
            httponly=True,
            samesite="Lax",
            path="/",
            max_age=int(ctx.config.ui_session_ttl),
            secure=request.urlparts.scheme == "https",
        )
        return response

    @root.post("/logout")
    @page(ctx, write=True)
    def logout(req: Req) -> Any:
        sessions.sign_out(ctx, req.request.cookies.get(sessions.COOKIE))
        response = bottle.HTTPResponse(status=303, headers={"Location": "/login"})
        response.delete_cookie(sessions.COOKIE, path="/")
        return response


def _safe_next(value: str | None) -> str:
    """Only a path on this site (never //host or a scheme), else the landing page."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/running"
    return value
