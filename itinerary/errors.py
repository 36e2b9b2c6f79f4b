"""The errors every layer may raise: a wrong setting, and the API's one error shape.

`ConfigError` is raised wherever a setting is read (flags, environment, file, the
DSN in db.py) and shown as one line naming the setting. Every failure a route can
meet becomes an `ApiError`; `make_api` turns it into
`{"error": {"code", "message", "fields"}}` with its status, so clients parse one
shape whatever went wrong (design.md, "HTTP").
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A setting is wrong; the message says which and why."""


# The statuses the API answers with, and the `code` each carries by default.
CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "unprocessable",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    """An HTTP error with a machine-readable code and, for validation, the bad fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES[status]
        self.message = message
        self.fields = fields or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "fields": self.fields}}


def invalid(fields: dict[str, str], message: str | None = None) -> ApiError:
    """A 400 naming each bad field."""
    return ApiError(
        400,
        message or "invalid request: " + "; ".join(f"{k}: {v}" for k, v in fields.items()),
        fields=fields,
    )


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")
