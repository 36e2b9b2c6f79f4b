"""Keyset pagination: an opaque cursor holding the sort key of the last row served.

A page asks for `limit + 1` rows after the cursor's key, so the next page starts
exactly after the last row shown whatever was inserted meanwhile (offsets would
shift). The cursor is base64url JSON of the key plus the sort name, so a cursor
from one listing cannot be replayed against another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from itinerary.errors import invalid
from itinerary.jsontext import RawJSON

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def encode(kind: str, key: Sequence[Any]) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, cursor: str | None, types: Sequence[type]) -> list[Any] | None:
    """The key in `cursor`, checked against the listing's kind and key types; None if absent."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid({"cursor": "is not a cursor this API issued"}) from None
    if (
        not isinstance(value, list)
        or len(value) != len(types) + 1
        or value[0] != kind
        or not all(
            isinstance(v, t) and not isinstance(v, bool)
            for v, t in zip(value[1:], types, strict=True)
        )
    ):
        raise invalid({"cursor": "is not a cursor for this listing"})
    return value[1:]


def page(items: list[dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    """A page of a listing, as the API answers it."""
    return {"items": items, "nextCursor": next_cursor}


def raw_page(items_json: list[str], next_cursor: str | None) -> RawJSON:
    """`page` for items that are JSON text already: the same bytes `page` would serialise to."""
    return RawJSON(
        '{"items":[' + ",".join(items_json) + '],"nextCursor":' + json.dumps(next_cursor) + "}"
    )
