"""The automatic retry policy: which job error codes are worth a new attempt (the one place that says so)."""

from __future__ import annotations

from typing import Any

# Failures of the environment, not of the job's spec: out of memory, an artifact store that refused a write,
# a backing service that was down, a worker that vanished, a run past its timeout_s. A spec that cannot run
# (invalid_request and its precise codes) or an exception raised by the job itself (internal) is never retried.
RETRYABLE_CODES = frozenset(
    {"resource_exhausted", "storage_unavailable", "unavailable", "service_unavailable", "worker_lost", "timeout"}
)
MAX_RETRIES_LIMIT = 10


def retryable(error: dict[str, Any] | None) -> bool:
    """Whether a failed job's ``error`` has a code the retry policy resubmits."""
    return error is not None and str(error.get("code")) in RETRYABLE_CODES


def should_retry(status: str, error: dict[str, Any] | None, retry_number: int, max_retries: int) -> bool:
    """Whether a job that just reached ``status`` gets an automatic retry: it failed with a retryable code and
    its retry chain has used fewer than ``max_retries`` retries."""
    return status == "failed" and retryable(error) and retry_number < max_retries
