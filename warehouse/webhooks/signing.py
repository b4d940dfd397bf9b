"""HMAC-SHA256 signatures of webhook events, as execution venues send them.

The sender puts the Unix time in seconds in `X-WH-Timestamp` and
`sha256=` + hex(HMAC_SHA256(secret, timestamp + raw_body)) in `X-WH-Signature`. The
timestamp is inside the signed text, so a captured request cannot be replayed later with a
fresh timestamp; the receiver refuses timestamps outside its window.
"""

from __future__ import annotations

import hashlib
import hmac
import re

TIMESTAMP_HEADER = "X-WH-Timestamp"
SIGNATURE_HEADER = "X-WH-Signature"
_DIGITS = re.compile(r"[0-9]{1,12}")  # Unix seconds, ASCII digits only (int() would take '²' or 10⁴⁰⁰)


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + body, hashlib.sha256).hexdigest()


def headers(secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers a sender adds to `body` (wh's own emitter and the tests)."""
    ts = str(int(timestamp))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: signature(secret, ts, body), "Content-Type": "application/json"}


def verify(secret: bytes, timestamp: str | None, given: str | None, body: bytes) -> bool:
    """Constant-time comparison of the signature the sender gave with the one `body` has."""
    if not timestamp or not given or not _DIGITS.fullmatch(timestamp):
        return False
    return hmac.compare_digest(signature(secret, timestamp, body).encode(), given.strip().encode())
