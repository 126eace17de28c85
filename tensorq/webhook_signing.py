"""Signing webhook deliveries: HMAC-SHA256 over ``timestamp + "." + body`` with the tenant's secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "TensorQ-Signature"
TIMESTAMP_HEADER = "TensorQ-Timestamp"
DELIVERY_HEADER = "TensorQ-Delivery"
EVENT_HEADER = "TensorQ-Event"
SCHEME = "v1"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret (``whsec_`` and 43 URL-safe characters, 256 bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``v1=`` and the hex HMAC-SHA256 of ``timestamp.body`` under ``secret``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, header: str, *, tolerance_s: float = 300.0) -> bool:
    """Whether ``header`` signs ``body`` at ``timestamp`` under ``secret`` and the timestamp is recent."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(signature(secret, timestamp, body), header)
