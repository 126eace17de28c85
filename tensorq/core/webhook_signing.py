"""Signing webhook deliveries with the tenant's secret (HMAC-SHA256), and checking them on the receiver's side.

Two schemes are sent for one release: ``v2`` (header ``TensorQ-Signature-V2``) signs
``timestamp.delivery_id.event.body``, so a captured delivery replayed under another ``TensorQ-Delivery`` id or
event fails; ``v1`` (header ``TensorQ-Signature``, deprecated) signs ``timestamp.body`` only."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "TensorQ-Signature"
SIGNATURE_V2_HEADER = "TensorQ-Signature-V2"
TIMESTAMP_HEADER = "TensorQ-Timestamp"
DELIVERY_HEADER = "TensorQ-Delivery"
EVENT_HEADER = "TensorQ-Event"
SCHEME = "v1"
SCHEME_V2 = "v2"
SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300.0


def new_secret() -> str:
    """A fresh signing secret (``whsec_`` and 43 URL-safe characters, 256 bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The deprecated ``v1`` header value: ``v1=`` and the hex HMAC-SHA256 of ``timestamp.body``."""
    return f"{SCHEME}={_mac(secret, timestamp.encode() + b'.' + body)}"


def signature_v2(secret: str, timestamp: str, delivery_id: str, event: str, body: bytes) -> str:
    """The ``v2`` header value: ``v2=`` and the hex HMAC-SHA256 of ``timestamp.delivery_id.event.body``."""
    return f"{SCHEME_V2}={_mac(secret, f'{timestamp}.{delivery_id}.{event}.'.encode() + body)}"


def _fresh(timestamp: str, tolerance_s: float) -> bool:
    try:
        return abs(time.time() - int(timestamp)) <= tolerance_s
    except ValueError:
        return False


def verify(secret: str, timestamp: str, body: bytes, header: str, *, tolerance_s: float = TOLERANCE_S) -> bool:
    """Whether the deprecated ``v1`` ``header`` signs ``body`` at a recent ``timestamp`` (no replay protection
    across delivery ids: prefer ``verify_delivery``)."""
    return _fresh(timestamp, tolerance_s) and hmac.compare_digest(signature(secret, timestamp, body), header)


def verify_v2(
    secret: str,
    timestamp: str,
    delivery_id: str,
    event: str,
    body: bytes,
    header: str,
    *,
    tolerance_s: float = TOLERANCE_S,
) -> bool:
    """Whether the ``v2`` ``header`` signs this delivery id, event and body at a recent ``timestamp``."""
    expected = signature_v2(secret, timestamp, delivery_id, event, body)
    return _fresh(timestamp, tolerance_s) and hmac.compare_digest(expected, header)


def verify_delivery(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = TOLERANCE_S,
    allow_v1: bool = False,
) -> bool:
    """Whether a received delivery (its headers, any case, and raw body) is authentic and fresh: by ``v2``
    whenever it is present; by ``v1`` only when it is absent and ``allow_v1`` (a sender of an older release)."""
    found = {name.lower(): value for name, value in headers.items()}
    timestamp = found.get(TIMESTAMP_HEADER.lower(), "")
    v2 = found.get(SIGNATURE_V2_HEADER.lower())
    if v2 is not None:
        delivery_id = found.get(DELIVERY_HEADER.lower(), "")
        event = found.get(EVENT_HEADER.lower(), "")
        return verify_v2(secret, timestamp, delivery_id, event, body, v2, tolerance_s=tolerance_s)
    v1 = found.get(SIGNATURE_HEADER.lower())
    return allow_v1 and v1 is not None and verify(secret, timestamp, body, v1, tolerance_s=tolerance_s)
