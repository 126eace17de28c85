"""Response schemas: what each route answers, used to build the OpenAPI document (and checked against it)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt

from db.records import STATUSES
from ml.catalog import EXPLAIN_METHODS, PREDICT_MODES
from ml.specs import ExplainSpec, ImportSpec, PredictSpec, TrainSpec

# A named enum, so that a generated client has one JobStatus (values from db.records).
JobStatus = Enum("JobStatus", [(status, status) for status in STATUSES], type=str)  # type: ignore[misc]
Matrix = list[Any]


class ErrorBody(BaseModel):
    """The body of every error: a stable code, a message for people, and details."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """``{"error": {...}}``."""

    error: ErrorBody


class Open(BaseModel):
    """A result that may carry fields added by later releases."""

    model_config = ConfigDict(extra="allow")


class Progress(Open):
    """A running job's last progress report: the epoch, and each figure it logged (loss, val_loss, ...)."""

    __pydantic_extra__: dict[str, float]

    epoch: int | None = None
    epochs: int | None = None


class TrainResult(Open):
    """A finished training job: the model version it registered, its held-out metrics and per-epoch history."""

    model_id: str
    version: int
    metrics: dict[str, float | None]
    history: dict[str, list[float | None]]
    epochs_run: int | None = None
    columns: list[dict[str, Any]] | None = Field(
        default=None,
        description="a table with categories or missing cells: per feature column its type, missing cells, "
        "imputation and vocabulary_size (see docs/data.md)",
    )
    stopped_by: str | None = Field(
        default=None,
        description="an agent: what ended its training (target_return, max_steps, max_episodes, max_seconds)",
    )
    environment: str | None = Field(default=None, description="an agent: the environment it trained in")


class PredictResult(Open):
    """A classifier's outputs: inline ``outputs`` (and ``classes``) for few rows, else a ``predictions.csv``."""

    task: Literal["classify"]
    model_id: str
    version: int
    model_name: str | None = Field(default=None, description="the name of the model whose version ran")
    model_ref: str | None = Field(default=None, description="the reference the spec gave (id, name, :version, @alias)")
    rows: int
    outputs: Matrix | None = None
    classes: list[int] | None = None
    classes_preview: list[int] | None = Field(default=None, description="classes of the first 20 rows")
    labels: list[str] | None = Field(default=None, description="the class names of classes, when the model has them")
    labels_preview: list[str] | None = Field(default=None, description="the class names of classes_preview")
    metrics: dict[str, float | int] | None = Field(
        default=None, description="accuracy (or rmse) and labelled_rows when the dataset has labels"
    )
    artifacts: list[str] | None = None
    streamed: bool | None = Field(
        default=None, description="true when the dataset was read in chunks, not whole (docs/data.md: streaming)"
    )


class RecommenderResult(Open):
    """A recommender's answer: a ``user``'s top ``items`` with ``scores``, or ``ratings`` of (user, item) pairs."""

    task: Literal["recommend"]
    model_id: str
    version: int
    model_name: str | None = Field(default=None, description="the name of the model whose version ran")
    model_ref: str | None = Field(default=None, description="the reference the spec gave (id, name, :version, @alias)")
    user: str | None = None
    items: list[Any] | None = None
    scores: list[float] | None = None
    rows: int | None = None
    ratings: list[float] | None = None
    ratings_preview: list[float] | None = None
    artifacts: list[str] | None = None


class GenerativeResult(Open):
    """A vae's ``encode``, ``reconstruct`` or ``sample``: its arrays inline, else an ``outputs.npz``."""

    task: Literal["autoencode"]
    model_id: str
    version: int
    model_name: str | None = Field(default=None, description="the name of the model whose version ran")
    model_ref: str | None = Field(default=None, description="the reference the spec gave (id, name, :version, @alias)")
    mode: Literal[PREDICT_MODES]  # type: ignore[valid-type]
    rows: int
    artifacts: list[str] | None = None


class PolicyResult(Open):
    """An agent's policy on observations: the greedy ``actions`` (with their names) and the action
    ``probabilities``, inline for few rows, else a ``predictions.csv``."""

    task: Literal["reinforce"]
    model_id: str
    version: int
    model_name: str | None = Field(default=None, description="the name of the model whose version ran")
    model_ref: str | None = Field(default=None, description="the reference the spec gave (id, name, :version, @alias)")
    rows: int
    actions: list[int] | None = None
    action_names: list[str] | None = None
    probabilities: Matrix | None = None
    classes_preview: list[int] | None = Field(default=None, description="actions of the first 20 rows")
    labels_preview: list[str] | None = Field(default=None, description="the names of classes_preview")
    artifacts: list[str] | None = None


PredictOutcome = Annotated[
    PredictResult | RecommenderResult | GenerativeResult | PolicyResult, Field(discriminator="task")
]


class ExplainResult(Open):
    """Attributions of the inputs' shape, the method's quality figures, and a heatmap PNG per image input."""

    model_id: str
    version: int
    model_name: str | None = Field(default=None, description="the name of the model whose version ran")
    model_ref: str | None = Field(default=None, description="the reference the spec gave (id, name, :version, @alias)")
    method: Literal[EXPLAIN_METHODS]  # type: ignore[valid-type]
    baseline: Any = Field(default=None, description="the baseline the attributions are measured against")
    targets: list[int]
    attributions: Matrix
    quality: dict[str, Any]
    per_input_quality: list[Any] | None = None
    tokens: list[Any] | None = None
    expected_values: list[Any] | None = None
    feature_names: list[str] | None = None
    attribution_axes: list[str] | None = Field(
        default=None, description='an audio model\'s: ["time", "frequency"], attributions per spectrogram cell'
    )
    artifacts: list[str] | None = Field(
        default=None,
        description="heatmap_<i>.png (image/png) per image input; per audio clip clip_<i>.wav (the clip as the "
        "model heard it), spectrogram_<i>.png and heatmap_<i>.png",
    )
    explained: Literal["logit"] | None = Field(
        default=None, description="a policy: the chosen action's logit is explained, not its probability"
    )
    target_names: list[str] | None = Field(default=None, description="a policy: the names of the explained actions")


class ImportResult(Open):
    """An imported model: its name, its signature, and the version it was registered as."""

    model_name: str
    signature: dict[str, Any]
    model_id: str | None = None
    version: int | None = None


class ChildCounts(BaseModel):
    """A parent's children by status, and how many may fail before it does."""

    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    max_failed_children: int


class JobFields(BaseModel):
    """What every job has, whatever its type."""

    id: str
    status: JobStatus
    progress: Progress | None
    error: ErrorBody | None
    priority: int
    attempts: int
    max_attempts: int
    timeout_s: int | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    waiting_reason: str | None = Field(
        default=None, description="why a queued job waits, e.g. no live worker serves queue 'train'"
    )
    queue_position: int | None = Field(
        default=None,
        description="while queued: how many queued jobs of its queue start before it (fair share across tenants, "
        "then priority, then age)",
    )
    expected_start_s: float | None = Field(
        default=None,
        description="while queued: seconds until it is expected to start, from recent run times and the live "
        "workers (null when no live worker serves its queue or its type has no run time yet)",
    )
    retry_of: str | None = Field(default=None, description="the failed or cancelled job this one retries")
    name: str | None = Field(default=None, description="the label the submission gave")
    tags: list[str] = Field(default_factory=list, description="the submission's tags")
    callback_url: str | None = Field(default=None, description="where the job's record is POSTed when it ends")
    max_retries: int = Field(default=0, description="automatic retries allowed on a retryable failure")
    retry_number: int = Field(
        default=0, description="how many retries precede this job in its retry_of chain (0: a first submission)"
    )
    parent_id: str | None = Field(default=None, description="the job this one is a child of (GET /v1/jobs?parent=)")
    children: ChildCounts | None = Field(default=None, description="a parent's children by status (null otherwise)")


class GroupSpec(Open):
    """A batch's parent: its failure policy."""

    failure_policy: Any = Field(description="fail_fast, or {max_failed_children: N}")


class GroupResult(Open):
    """A succeeded parent: how its children ended."""

    children: ChildCounts


class GroupJob(JobFields):
    """The parent a batch asked for: it runs while its children do and ends as they say."""

    type: Literal["group"]
    spec: GroupSpec
    result: GroupResult | None


class TuneSpecShown(Open):
    """A tune's spec as submitted, with the study the server made for it and the direction it optimizes."""

    train: dict[str, Any]
    search_space: dict[str, Any]
    n_trials: int


class TuneResult(Open):
    """A tune's trials (params, metric value, state, epochs run), its best trial and params, the params'
    importances, and the best model registered under the tune's model name."""

    children: ChildCounts
    trials: list[dict[str, Any]]
    importances: dict[str, float] = Field(default_factory=dict)
    best_params: dict[str, Any] | None = None
    best_value: float | None = None
    model_id: str | None = None
    version: int | None = None


class TuneJob(JobFields):
    """A hyperparameter search: its trials are its children, train jobs."""

    type: Literal["tune"]
    spec: TuneSpecShown
    result: TuneResult | None


class TrainJob(JobFields):
    """A training job."""

    type: Literal["train"]
    spec: TrainSpec
    result: TrainResult | None


class PredictJob(JobFields):
    """A predict job."""

    type: Literal["predict"]
    spec: PredictSpec
    result: PredictOutcome | None


class ExplainJob(JobFields):
    """An explain job."""

    type: Literal["explain"]
    spec: ExplainSpec
    result: ExplainResult | None


class ImportJob(JobFields):
    """The import of an uploaded ``.keras`` model."""

    type: Literal["import"]
    spec: ImportSpec
    result: ImportResult | None


class Job(
    RootModel[
        Annotated[TrainJob | PredictJob | ExplainJob | ImportJob | GroupJob | TuneJob, Field(discriminator="type")]
    ]
):
    """A job as the API shows it: its ``type`` says which spec and result it has."""


class JobBatchResult(BaseModel):
    """The jobs of a batch submission, in the order they were sent."""

    jobs: list[Job]
    parent: Job | None = Field(default=None, description="the parent the batch asked for, when it did")


class JobSummary(JobFields):
    """A job in a listing: everything but its spec and result, which ``?fields=spec,result`` adds."""

    type: Literal["train", "predict", "explain", "import", "group", "tune"]
    spec: dict[str, Any] | None = Field(default=None, description="only with fields=spec (or all)")
    result: dict[str, Any] | None = Field(default=None, description="only with fields=result (or all)")


class JobPage(BaseModel):
    """A page of job summaries, newest first."""

    jobs: list[JobSummary]
    next_cursor: str | None


class StateData(Open):
    """What a state change records: the claiming ``worker``, a failure's ``code`` or a hand-back's ``reason``."""

    worker: str | None = None
    code: str | None = None
    reason: str | None = None


class EventFields(BaseModel):
    """What every event has."""

    seq: int
    created_at: datetime


class StateEvent(EventFields):
    """A state change of the job (``from_status`` is null for the first, ``queued``)."""

    kind: Literal["state"]
    from_status: JobStatus | None
    to_status: JobStatus
    data: StateData | None


class ProgressEvent(EventFields):
    """A progress report of the running job."""

    kind: Literal["progress"]
    from_status: None = None
    to_status: None = None
    data: Progress


class CancelRequestedEvent(EventFields):
    """A cancel was asked for while the job ran; it stops at its next batch or epoch boundary."""

    kind: Literal["cancel_requested"]
    from_status: None = None
    to_status: None = None
    data: None = None


class Event(RootModel[Annotated[StateEvent | ProgressEvent | CancelRequestedEvent, Field(discriminator="kind")]]):
    """A job's event: its ``kind`` says what it carries."""


class EventList(BaseModel):
    """A job's events in order."""

    events: list[Event]


class GpuOut(BaseModel):
    """A worker's GPU: the ``--gpu`` choice and each device TensorFlow sees."""

    index: str
    devices: list[dict[str, Any]]


class WorkerOut(BaseModel):
    """A live worker process; ``current_job`` only when that job is the caller's."""

    name: str = Field(description="<celery node>:<pid>")
    node: str
    host: str
    pid: int
    gpu: GpuOut | None
    queues: list[str]
    version: str
    started_at: datetime
    busy: bool
    current_job: str | None
    last_seen: datetime


class WorkerList(BaseModel):
    """The workers seen within worker_stale_s."""

    workers: list[WorkerOut]


class QueueOut(BaseModel):
    """One queue, every tenant together."""

    name: str
    depth: int = Field(description="jobs queued")
    running: int
    oldest_queued_age_s: float | None
    live_workers: int


class QueueList(BaseModel):
    """Each queue."""

    queues: list[QueueOut]


class LogLineOut(BaseModel):
    """One line a worker wrote while it ran the job."""

    seq: int = Field(description="orders the job's lines; pass the last one as after= for the next page")
    time: str
    attempt: int = Field(description="the attempt that wrote it (a re-queued job runs again)")
    level: str
    logger: str
    message: str


class LogPage(BaseModel):
    """A page of a job's log lines, oldest first."""

    lines: list[LogLineOut]
    next_after: int = Field(description="after= for the next page")
    finished: bool = Field(description="the job has finished: no line will follow the ones there are")


class DatasetColumn(Open):
    """One column of a table as inferred at upload: its type (numeric, categorical, text or empty), missing
    cells, distinct values (non-numeric columns, capped at 1001) and, when a model cannot use it, why."""

    name: str
    type: Literal["numeric", "categorical", "text", "empty"]
    missing: int
    distinct: int | None = None
    problem: str | None = None


class DatasetPreview(BaseModel):
    """The first rows of a table (at most 10), each cell as text cut to 200 characters, null when missing."""

    columns: list[str]
    rows: list[list[str | None]]


class DatasetOut(BaseModel):
    """An uploaded dataset."""

    id: str
    name: str
    format: Literal["npz", "csv", "parquet", "jsonl", "audio"] = Field(description="audio: a zip of WAV clips")
    size_bytes: int
    info: dict[str, Any]
    created_at: datetime


class DatasetDetail(DatasetOut):
    """One dataset with its inferred schema and first rows (null for an .npz, audio, or an upload made before they
    were kept)."""

    schema_: list[DatasetColumn] | None = Field(alias="schema")
    preview: DatasetPreview | None


class DatasetList(BaseModel):
    """The caller's datasets."""

    datasets: list[DatasetOut]


class LineageDataset(Open):
    """The dataset a version was trained on: ``ref`` as the spec gave it; an upload's id, name, format and
    the SHA-256 of its file."""

    ref: str
    id: str | None = None
    name: str | None = None
    format: str | None = None
    sha256: str | None = None


class Lineage(Open):
    """Where a version came from: the training job, its dataset and its spec (kept after they are deleted)."""

    training_job_id: str | None = None
    dataset: LineageDataset | None = None
    spec: dict[str, Any] | None = None


class ModelVersionOut(BaseModel):
    """One version of a model."""

    version: int
    training_job_id: str | None
    architecture: str | None
    metrics: dict[str, Any]
    signature: dict[str, Any]
    lineage: Lineage | None = Field(description="where the version came from (null for versions older than lineage)")
    created_at: datetime


class ModelOut(BaseModel):
    """A model with its versions and aliases."""

    id: str
    name: str
    created_at: datetime
    latest_version: int | None
    aliases: dict[str, int] = Field(description="alias -> version number")
    versions: list[ModelVersionOut]


class AliasTarget(BaseModel):
    """The body of ``PUT /v1/models/{model_id}/aliases/{alias}``: the version the alias is to name."""

    model_config = ConfigDict(extra="forbid")

    version: StrictInt = Field(ge=1, le=999_999_999)  # strict: true, 1.0 and "1" are not versions


class DatasetReference(BaseModel):
    """The body of ``POST /v1/datasets/references``: a dataset registered by URL, never sent through the API."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=6,
        max_length=2000,
        description="s3://bucket/path/file.parquet, a folder of shards, or a glob (s3://lake/events/*.parquet), "
        "under a prefix the operator allows (TENSORQ_DATASET_URL_PREFIXES)",
    )
    name: str | None = Field(default=None, max_length=200)


class ModelEventOut(BaseModel):
    """A change to the registry: ``alias_set`` (from_version null when new), ``alias_deleted``,
    ``version_deleted`` or ``model_deleted``; ``key_id`` is the API key that made it."""

    seq: int
    model_id: str
    model_name: str
    kind: Literal["alias_set", "alias_deleted", "version_deleted", "model_deleted"]
    data: dict[str, Any]
    key_id: str | None
    created_at: datetime


class ModelEventList(BaseModel):
    """A model's registry history, oldest first."""

    events: list[ModelEventOut]


class Deleted(BaseModel):
    """What a delete removed, and the bytes of storage it gave back to the tenant's quota."""

    deleted: Literal["job", "dataset", "model", "model_version"]
    id: str
    versions: list[int] | None = Field(default=None, description="the model versions deleted")
    freed_bytes: int


class ModelList(BaseModel):
    """The caller's models."""

    models: list[ModelOut]


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Readiness, with each dependency's state."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="database, broker and storage: 'ok' or 'unavailable: ...'")


class WebhookSecret(BaseModel):
    """The tenant's new webhook signing secret: shown this once; deliveries are signed with it from now on."""

    secret: str = Field(
        description="the HMAC-SHA256 key of the TensorQ-Signature-V2 header (and of the deprecated TensorQ-Signature)"
    )
    created_at: datetime
    replaced: bool = Field(description="whether it replaced an older secret (which no longer signs anything)")


class WebhookSecretState(BaseModel):
    """Whether the tenant has a webhook signing secret, and since when (never the secret itself)."""

    configured: bool
    created_at: datetime | None


class WebhookDelivery(BaseModel):
    """One notification of a job's terminal state (its body is the job's record)."""

    id: str = Field(description="the TensorQ-Delivery header: the same on every attempt")
    job_id: str
    event: Literal["job.succeeded", "job.failed", "job.cancelled"]
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class WebhookDeliveryList(BaseModel):
    """A job's webhook deliveries, oldest first."""

    deliveries: list[WebhookDelivery]


class Identity(BaseModel):
    """The caller: its tenant and whether its key is read-only."""

    tenant: str
    tenant_id: str
    key_id: str
    read_only: bool
