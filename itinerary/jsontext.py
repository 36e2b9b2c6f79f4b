"""JSON values shared by the API, the pages and the read queries below them.

They live below `itinerary/api/` so that `queries.py` and `pagination.py` can make
the API's JSON without importing the API package (which imports them).
"""

from __future__ import annotations

from datetime import UTC, datetime


class RawJSON(str):
    """A reply body that is JSON text already (assembled from cached parts): sent as is."""


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC with a `Z`, or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
