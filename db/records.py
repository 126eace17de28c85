"""Plain dataclasses that carry rows out of ``db/``; ORM objects never leave it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

JOB_TYPES = ("train", "predict", "explain", "import", "group", "tune")
TERMINAL = ("succeeded", "failed", "cancelled")
STATUSES = ("queued", "running", *TERMINAL)
EVENT_KINDS = ("state", "progress", "cancel_requested")


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
@overload
def aware(value: datetime | None) -> datetime | None: ...


def aware(value: datetime | None) -> datetime | None:
    """``value`` with UTC attached when the database handed it back naive (SQLite)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """An ISO-8601 timestamp in UTC, or None."""
    value = aware(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True)
class ChildCounts:
    """A parent's children by status (running totals kept on the parent's row) and its failure policy: it
    fails once more than ``max_failed`` of them failed or were cancelled."""

    total: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    max_failed: int = 0

    @property
    def ended(self) -> int:
        """Children that reached a final state."""
        return self.succeeded + self.failed + self.cancelled

    @property
    def queued(self) -> int:
        """Children waiting for a worker."""
        return self.total - self.running - self.ended

    @property
    def failures(self) -> int:
        """Children that ended without succeeding."""
        return self.failed + self.cancelled

    def public(self) -> dict[str, int]:
        """The counts as the API shows them."""
        return {
            "total": self.total,
            "queued": self.queued,
            "running": self.running,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "max_failed_children": self.max_failed,
        }


@dataclass(frozen=True)
class JobRecord:
    """A job as the rest of the system sees it."""

    id: str
    tenant_id: str
    type: str
    status: str
    spec: dict[str, Any]
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    priority: int
    attempts: int
    max_attempts: int
    timeout_s: int | None
    cancel_requested: bool
    revision: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    published_at: datetime | None = None
    retry_of: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    callback_url: str | None = None
    max_retries: int = 0
    retry_number: int = 0
    parent_id: str | None = None
    children: ChildCounts | None = None

    @property
    def terminal(self) -> bool:
        """Whether the job has reached one of its final states."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class Claim:
    """A worker's hold on a running job: the lease token proves it."""

    job: JobRecord
    lease_token: str


@dataclass(frozen=True)
class EventRecord:
    """One state change or progress event of a job."""

    seq: int
    kind: str
    from_status: str | None
    to_status: str | None
    data: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class DatasetRecord:
    """An uploaded dataset."""

    id: str
    tenant_id: str
    name: str
    format: str
    path: str
    size_bytes: int
    info: dict[str, Any]
    created_at: datetime
    profile: dict[str, Any] | None = None

    @property
    def schema(self) -> list[dict[str, Any]] | None:
        """Each column's inferred type and missing cells (``ml.tabular``), when the upload was profiled."""
        return (self.profile or {}).get("schema")


@dataclass(frozen=True)
class ModelSignature:
    """What a version's stored signature says of the model, read once: what it does (``task``; "classify" for
    versions registered before tasks were recorded), its inputs' ``kind``, its class and feature names."""

    task: str = "classify"
    kind: str | None = None
    class_names: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None

    @classmethod
    def read(cls, stored: Mapping[str, Any] | None) -> ModelSignature:
        """The typed view of a stored signature (the JSON of ``ModelVersionRecord.signature``)."""
        stored = stored or {}
        kind, classes, features = stored.get("kind"), stored.get("class_names"), stored.get("feature_names")
        return cls(
            task=str(stored.get("task", "classify")),
            kind=None if kind is None else str(kind),
            class_names=None if classes is None else tuple(str(name) for name in classes),
            feature_names=None if features is None else tuple(str(name) for name in features),
        )


@dataclass(frozen=True)
class ModelVersionRecord:
    """One registered version of a model (``signature`` as stored, ``interface`` its typed view)."""

    id: str
    model_id: str
    model_name: str
    tenant_id: str
    version: int
    training_job_id: str | None
    path: str
    architecture: str | None
    metrics: dict[str, Any]
    signature: dict[str, Any]
    created_at: datetime
    lineage: dict[str, Any] | None = None
    interface: ModelSignature = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "interface", ModelSignature.read(self.signature))


@dataclass(frozen=True)
class ModelVersionDraft:
    """A trained model to register (in the same transaction that finishes its job, for a training job)."""

    model_name: str
    path: str
    architecture: str | None
    metrics: dict[str, Any]
    signature: dict[str, Any]
    lineage: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelRecord:
    """A model with its versions, oldest first."""

    id: str
    tenant_id: str
    name: str
    created_at: datetime
    versions: list[ModelVersionRecord] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEventRecord:
    """An audit row of the registry: who moved which alias, or deleted which version, and when."""

    seq: int
    model_id: str
    model_name: str
    kind: str
    data: dict[str, Any]
    key_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant behind an API key."""

    tenant_id: str
    key_id: str
    read_only: bool
    tenant_name: str = ""
