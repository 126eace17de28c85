"""What the Python client returns: plain frozen dataclasses built from the API's JSON."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Self, get_type_hints

JobType = Literal["train", "predict", "explain", "import"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 timestamp from the API as a datetime (None stays None)."""
    return datetime.fromisoformat(value) if value else None


@functools.cache
def _fields_of(cls: type) -> tuple[frozenset[str], frozenset[str]]:
    """The names of ``cls``'s fields, and of those among them that hold a datetime (read from the type hints)."""
    hints = get_type_hints(cls)
    names = frozenset(f.name for f in fields(cls))
    times = frozenset(n for n in names if hints[n] in (datetime, datetime | None))
    return names, times


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that ``cls`` has fields for (a newer server's extra fields are ignored), with every
    datetime field parsed from its ISO 8601 text (a missing one is None)."""
    names, times = _fields_of(cls)
    values = {k: v for k, v in data.items() if k in names}
    values.update({name: parse_time(data.get(name)) for name in times})
    return values


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a stable code, a message, and details (phase, traceback) when known."""

    code: str
    message: str
    details: Any = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's ``error`` object."""
        code, message = str(data.get("code", "error")), str(data.get("message", ""))
        return cls(code=code, message=message, details=data.get("details"))


@dataclass(frozen=True)
class Job:
    """A job as the API shows it; ``result`` and ``progress`` keep the job type's own keys."""

    id: str
    type: str
    status: str
    spec: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None
    priority: int = 0
    attempts: int = 0
    max_attempts: int = 1
    timeout_s: int | None = None
    cancel_requested: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    waiting_reason: str | None = None
    queue_position: int | None = None
    expected_start_s: float | None = None
    retry_of: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    callback_url: str | None = None
    max_retries: int = 0
    retry_number: int = 0
    parent_id: str | None = None
    children: dict[str, int] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's job object."""
        values = _known(cls, data)
        values["error"] = JobError.from_dict(data["error"]) if data.get("error") else None
        return cls(**values)

    @property
    def finished(self) -> bool:
        """Whether the job has reached a final state."""
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        """Whether the job finished successfully."""
        return self.status == "succeeded"


@dataclass(frozen=True)
class JobPage:
    """A page of jobs, newest first; pass ``next_cursor`` for the next one."""

    jobs: list[Job]
    next_cursor: str | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's page object."""
        return cls(jobs=[Job.from_dict(j) for j in data["jobs"]], next_cursor=data.get("next_cursor"))


@dataclass(frozen=True)
class Event:
    """A state change (``kind == "state"``) or a progress report of a job."""

    seq: int
    kind: str
    from_status: str | None
    to_status: str | None
    data: dict[str, Any] | None
    created_at: datetime | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's event object."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Dataset:
    """An uploaded dataset."""

    id: str
    name: str
    format: str
    size_bytes: int
    info: dict[str, Any]
    created_at: datetime | None
    # Set by ``Client.dataset`` (and an upload): each column's inferred type and missing cells, and the first
    # rows (``{"columns": [...], "rows": [[...]]}``); None in listings, for .npz files and older uploads.
    schema: list[dict[str, Any]] | None = None
    preview: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's dataset object."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, with the job that trained (or imported) it."""

    version: int
    training_job_id: str | None
    architecture: str | None
    metrics: dict[str, Any]
    signature: dict[str, Any]
    created_at: datetime | None
    lineage: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's model version object."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Model:
    """A registered model with its versions."""

    id: str
    name: str
    created_at: datetime | None
    latest_version: int | None
    versions: list[ModelVersion]
    aliases: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's model object."""
        values = _known(cls, data)
        values["versions"] = [ModelVersion.from_dict(v) for v in data.get("versions", [])]
        return cls(**values)


@dataclass(frozen=True)
class ModelEvent:
    """A change to the registry (``alias_set``, ``alias_deleted``, ``version_deleted``, ``model_deleted``)."""

    seq: int
    model_id: str
    model_name: str
    kind: str
    data: dict[str, Any]
    key_id: str | None
    created_at: datetime | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's model event object."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Deleted:
    """What a delete removed and the storage bytes it freed."""

    deleted: str
    id: str
    freed_bytes: int
    versions: list[int] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's delete answer."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class WebhookSecret:
    """The tenant's new webhook signing secret (shown once) and whether it replaced an older one."""

    secret: str
    created_at: datetime | None = None
    replaced: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's answer."""
        return cls(**_known(cls, data))

    def __repr__(self) -> str:
        return f"WebhookSecret(secret='whsec_…', created_at={self.created_at!r}, replaced={self.replaced})"


@dataclass(frozen=True)
class WebhookDelivery:
    """One notification of a job's end: its id (the TensorQ-Delivery header), status and attempts."""

    id: str
    job_id: str
    event: str
    url: str
    status: str
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's delivery object."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class LogLine:
    """One line a worker wrote while it ran a job; ``seq`` orders a job's lines."""

    seq: int
    time: datetime | None
    attempt: int
    level: str
    logger: str
    message: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's log line object."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class LogPage:
    """A page of a job's log; ``next_after`` fetches the next, ``finished`` says no more will come."""

    lines: list[LogLine]
    next_after: int
    finished: bool

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's log page object."""
        lines = [LogLine.from_dict(line) for line in data["lines"]]
        return cls(lines=lines, next_after=int(data["next_after"]), finished=bool(data["finished"]))


@dataclass(frozen=True)
class Worker:
    """A live worker process; ``current_job`` is set only when the job it runs is the caller's."""

    name: str
    node: str
    host: str
    pid: int
    gpu: dict[str, Any] | None
    queues: list[str]
    version: str
    started_at: datetime | None
    busy: bool
    current_job: str | None
    last_seen: datetime | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's worker object."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Queue:
    """One queue across every tenant: jobs waiting and running, the oldest wait, live workers on it."""

    name: str
    depth: int
    running: int
    oldest_queued_age_s: float | None
    live_workers: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from the API's queue object."""
        return cls(**_known(cls, data))
