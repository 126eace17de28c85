"""The body of ``POST /v1/jobs`` and its parse; the job specs themselves are in ``ml.specs``."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field

from ml.specs import SPECS, Strict, parse


class JobSubmission(Strict):
    """The body of ``POST /v1/jobs``."""

    type: Literal["train", "predict", "explain"]
    spec: dict[str, Any]
    priority: int = Field(default=5, ge=0, le=9)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    timeout_s: int | None = Field(default=None, ge=1, le=30 * 24 * 3600)


def parse_submission(body: Any) -> tuple[JobSubmission, Strict]:
    """The submission and its typed spec."""
    submission = parse(JobSubmission, body)
    spec = parse(SPECS[submission.type], submission.spec, where="spec")
    return submission, spec


def request_hash(body: Any) -> str:
    """A stable hash of a JSON body, for Idempotency-Key checks."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
