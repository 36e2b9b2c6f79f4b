"""Identifiers made by the process that creates the thing, not by the database.

Run ids are short, URL-safe and never all digits, so `/runs/<run_id>` cannot be
mistaken for a numeric job id. Row ids for violations, action runs and webhook
deliveries are chosen by the sender, so a retried insert is idempotent and an
action run can point at its violation before either reaches the database.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import NewType

# The ids that cross component boundaries (messages, executor requests), told apart by mypy.
JobId = NewType("JobId", int)
RunId = NewType("RunId", str)

_ALPHABET_LEN = 16


def new_run_id() -> RunId:
    """'r' + 15 characters of lower-case base32: about 75 random bits."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return RunId("r" + raw[: _ALPHABET_LEN - 1])


def is_run_id(text: str) -> bool:
    return len(text) == _ALPHABET_LEN and text[0] == "r" and text[1:].isalnum()


def new_row_id() -> int:
    """A positive 63-bit id ordered by creation time: milliseconds << 20 | 20 random bits."""
    return (int(time.time() * 1000) << 20) | secrets.randbits(20)
