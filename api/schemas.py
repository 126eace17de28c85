"""The body of ``POST /v1/jobs`` and its parse; the job specs themselves are in ``ml.specs``."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ml.specs import SPECS, Name, Strict, TrainSpec, parse
from ml.tuning import TuneSpec
from tensorq.core.errors import InvalidRequest, OutOfRange
from tensorq.core.retry_policy import MAX_RETRIES_LIMIT
from tensorq.core.webhook_targets import MAX_URL_LENGTH

Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


class JobSubmission(Strict):
    """The body of ``POST /v1/jobs``."""

    type: Literal["train", "predict", "explain", "tune"]
    spec: dict[str, Any]
    priority: int = Field(default=5, ge=0, le=9)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    timeout_s: int | None = Field(default=None, ge=1, le=30 * 24 * 3600)
    name: Name | None = Field(default=None, description="a label for the job; GET /v1/jobs?name= filters on it")
    tags: list[Tag] = Field(default_factory=list, max_length=20, description="GET /v1/jobs?tag= filters on one")
    callback_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="an http(s) URL that gets the job's record, signed, when it ends (see docs/webhooks.md); "
        "internal addresses are refused (422 callback_url_forbidden) unless the operator allowed them",
    )
    max_retries: int = Field(
        default=0,
        ge=0,
        le=MAX_RETRIES_LIMIT,
        description="automatic retries on a retryable failure (resource_exhausted, storage_unavailable, "
        "worker_lost, timeout, unavailable): each is a new job linked by retry_of",
    )

    @field_validator("tags")
    @classmethod
    def _each_tag_once(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class ParentSubmission(Strict):
    """The parent a batch asks for (``{"jobs": [...], "parent": {...}}``): one job that follows its children."""

    name: Name | None = Field(default=None, description="a label for the parent")
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    priority: int = Field(default=5, ge=0, le=9)
    callback_url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    max_failed_children: int | None = Field(
        default=None,
        ge=0,
        description="the parent fails (and cancels the rest) once more than this many children failed or were "
        "cancelled; without it the parent fails fast, at the first",
    )

    @property
    def failure_policy(self) -> str | dict[str, int]:
        """The policy as the parent's spec records it: ``fail_fast`` or ``{"max_failed_children": N}``."""
        return "fail_fast" if self.max_failed_children is None else {"max_failed_children": self.max_failed_children}


class JobBatch(Strict):
    """The body of ``POST /v1/jobs`` for a batch: up to ``max_batch_jobs`` submissions, committed together;
    with ``parent``, the children of one new ``group`` job that a client can wait on instead."""

    jobs: list[JobSubmission] = Field(min_length=1)
    parent: ParentSubmission | None = None


def parse_submission(body: Any) -> tuple[JobSubmission, Strict]:
    """The submission, its ``spec`` now the typed spec's JSON (defaults filled in), and the typed spec."""
    submission = parse(JobSubmission, body)
    spec = parse(TuneSpec if submission.type == "tune" else SPECS[submission.type], submission.spec, where="spec")
    if getattr(spec, "trial", None) is not None:
        raise InvalidRequest("'trial' is set by the server on a tune's trials", details={"field": "spec.trial"})
    _check_time_budget(submission, spec)
    return with_spec(submission, spec), spec


def _check_time_budget(submission: JobSubmission, spec: Strict) -> None:
    """Refuse an agent whose wall-time budget runs past the job's own ``timeout_s`` (422 naming the field)."""
    environment = spec.environment if isinstance(spec, TrainSpec) else None
    if environment is None or submission.timeout_s is None or environment.max_seconds <= submission.timeout_s:
        return
    raise OutOfRange(
        f"spec.environment.max_seconds ({environment.max_seconds:g}) is over the job's timeout_s "
        f"({submission.timeout_s}); lower it or raise timeout_s",
        code="budget_over_timeout",
        details={"field": "spec.environment.max_seconds", "limit": submission.timeout_s},
    )


def with_spec(submission: JobSubmission, spec: Strict) -> JobSubmission:
    """The submission whose ``spec`` is the typed spec's JSON (defaults filled in)."""
    return submission.model_copy(update={"spec": spec.model_dump(mode="json", exclude_none=True)})


def request_hash(body: Any) -> str:
    """A stable hash of a JSON body, for Idempotency-Key checks."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
