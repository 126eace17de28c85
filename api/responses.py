"""Response schemas: what each route answers, used to build the OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """The body of every error: a stable code, a message for people, and details."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """``{"error": {...}}``."""

    error: ErrorBody


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    type: Literal["train", "predict", "explain"] | str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    spec: dict[str, Any]
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    priority: int
    attempts: int
    max_attempts: int
    timeout_s: int | None
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    jobs: list[JobOut]
    next_cursor: str | None


class EventOut(BaseModel):
    """A state change or progress report."""

    seq: int
    kind: str
    from_status: str | None
    to_status: str | None
    data: dict[str, Any] | None
    created_at: str


class EventList(BaseModel):
    """A job's events in order."""

    events: list[EventOut]


class DatasetOut(BaseModel):
    """An uploaded dataset."""

    id: str
    name: str
    format: str
    size_bytes: int
    info: dict[str, Any]
    created_at: str


class DatasetList(BaseModel):
    """The caller's datasets."""

    datasets: list[DatasetOut]


class ModelVersionOut(BaseModel):
    """One version of a model."""

    version: int
    training_job_id: str | None
    architecture: str | None
    metrics: dict[str, Any]
    signature: dict[str, Any]
    created_at: str


class ModelOut(BaseModel):
    """A model with its versions."""

    id: str
    name: str
    created_at: str
    latest_version: int | None
    versions: list[ModelVersionOut]


class ModelList(BaseModel):
    """The caller's models."""

    models: list[ModelOut]


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Readiness, with each dependency's state."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="database and broker: 'ok' or 'unavailable: ...'")


class Identity(BaseModel):
    """The caller: its tenant and whether its key is read-only."""

    tenant: str
    tenant_id: str
    key_id: str
    read_only: bool
