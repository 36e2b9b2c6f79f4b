"""Standard Webhooks signatures (protocols.md B4) for custom integrations.

`webhook-id` is the delivery's id (the same on every retry, so receivers can
deduplicate), `webhook-timestamp` unix seconds, and `webhook-signature`
`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`. A secret written
`whsec_<base64>` is used as its decoded bytes, as the Standard Webhooks
libraries do; any other secret as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def key_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(secret: str, headers_in: dict[str, str], body: bytes) -> bool:
    """What a receiver does (used by the tests): constant-time compare of any v1 signature."""
    expected = sign(secret, headers_in["webhook-id"], int(headers_in["webhook-timestamp"]), body)
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in headers_in["webhook-signature"].split(" ")
    )
