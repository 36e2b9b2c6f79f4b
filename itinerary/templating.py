"""User-written templates (webhook bodies, custom integrations), rendered in a sandbox.

A template comes from a job definition or an integration, so whoever may define a
job must not reach Python through it: `ImmutableSandboxedEnvironment` refuses
attribute escapes (`{{ ''.__class__ }}`) and mutation of the variables. Rendering
never raises into the caller's path: every failure, syntax or runtime, becomes a
`TemplateError` with a one-line reason the caller records (on the action run or
the delivery) and shows when an integration is tested.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2 import TemplateError as JinjaError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_TEMPLATE_CHARS = 20_000
MAX_OUTPUT_CHARS = 1_000_000


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered; the message says why."""


def _tojson(value: Any) -> str:
    """JSON for a value, safe inside a JSON body (`{"error": {{ error|tojson }}}`)."""
    return json.dumps(value, default=str, ensure_ascii=False)


_env = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
_env.filters["tojson"] = _tojson


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    """A template compiled once: the same few sources render at every delivery."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"template longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        return _env.from_string(source)
    except JinjaError as exc:
        raise TemplateError(f"template does not compile: {exc}") from None


def check(source: str) -> None:
    """Raise TemplateError when `source` does not compile (checked when a job is saved)."""
    _compiled(source)


def render(source: str, variables: dict[str, Any]) -> str:
    """The rendered text, or TemplateError with the reason (never another exception)."""
    template = _compiled(source)
    try:
        out = template.render(**variables)
    except SecurityError as exc:
        raise TemplateError(f"template refused by the sandbox: {exc}") from None
    except JinjaError as exc:
        raise TemplateError(f"template failed: {exc}") from None
    except Exception as exc:  # user code: a ZeroDivisionError is its failure, not ours
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from None
    if len(out) > MAX_OUTPUT_CHARS:
        raise TemplateError(f"rendered template longer than {MAX_OUTPUT_CHARS} characters")
    return out
