"""The web UI: server-rendered pages beside the JSON API, on the same reads and writes.

`install(root, ctx)` adds the pages to the root Bottle app (itinerary/http.py).
Every page goes through `pipeline.page` (who is asking, role, CSRF and origin
on writes, errors as HTML pages or htmx fragments); pages read through
`itinerary.queries` and `web/reads.py`, and write through `itinerary.operations`,
never through the API over HTTP. Templates are in the top-level `templates/`,
assets in `static/` (htmx vendored under `static/vendor/`).
"""

from __future__ import annotations

from typing import Any

from itinerary.context import Context


def install(root: Any, ctx: Context) -> None:
    from itinerary.web import (
        history,
        integrations,
        joblist,
        jobpage,
        jobs,
        manual,
        pipeline,
        running,
        runs,
    )

    pipeline.install(root, ctx)
    running.install(root, ctx)
    runs.install(root, ctx)
    history.install(root, ctx)
    jobpage.install(root, ctx)
    joblist.install(root, ctx)
    jobs.install(root, ctx)
    manual.install(root, ctx)
    integrations.install(root, ctx)
