"""SQLAlchemy 2.x models of TensorQ's database; ORM rows never leave ``db/``."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING)


class Tenant(Base):
    """A customer; every job, dataset and model belongs to exactly one."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """An API key; only a salted hash of its secret is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(128))
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """One train, predict or explain job and its whole life."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        # Quota counts on every submit and claim: queued and running jobs of one tenant.
        Index("ix_jobs_tenant_status", "tenant_id", "status"),
        # Listing a tenant's jobs of one type, newest first.
        Index("ix_jobs_tenant_type_created", "tenant_id", "type", "created_at"),
        # Status-led indexes are partial: their size is the backlog, never the history, and the planner
        # (which measures an index's pages at plan time) cannot prefer one over the primary key to reach
        # a job by id, whatever its statistics say. The outbox and the backlog read queued jobs by these.
        Index(
            "ix_jobs_queued_type_created",
            "type",
            "created_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index(
            "ix_jobs_queued_published",
            "published_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        # The lease reaper: running jobs by lease expiry.
        Index(
            "ix_jobs_running_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        # Recent run times of a type (a queued job's expected start): its latest successes.
        Index(
            "ix_jobs_succeeded_type_finished",
            "type",
            "finished_at",
            postgresql_where=text("status = 'succeeded'"),
            sqlite_where=text("status = 'succeeded'"),
        ),
        # Jobs made of jobs (issue 22): a parent's children newest first, and its children of one status.
        Index("ix_jobs_parent_created", "parent_id", "created_at"),
        Index("ix_jobs_parent_status", "parent_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict] = mapped_column(JSON)
    progress: Mapped[dict | None] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[dict | None] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    timeout_s: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # The failed or cancelled job this one retries (no foreign key: the old job may be deleted later).
    retry_of: Mapped[str | None] = mapped_column(String(36))
    # A caller's label for the job and its tags (each tag is also a job_tags row, for filtering).
    name: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list | None] = mapped_column(JSON)
    # Where to POST the job's record when it ends (the webhook outbox), and the automatic retry policy:
    # a retryable failure resubmits it while retry_number (retries before it in its chain) < max_retries.
    callback_url: Mapped[str | None] = mapped_column(Text)
    max_retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_number: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Jobs made of jobs (issue 22): the parent of a child (no foreign key, as retry_of), and on a parent the
    # running totals of its children, kept in the children's transition transactions (``db.parents``), and its
    # failure policy: it fails once more than max_failed_children of them failed or were cancelled.
    parent_id: Mapped[str | None] = mapped_column(String(36))
    children_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    children_running: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    children_succeeded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    children_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    children_cancelled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_failed_children: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobTotal(Base):
    """Finished jobs of one type and outcome whose run time fell in one histogram bucket; kept up by the
    job store in the transaction that finishes each job, so ``/metrics`` never groups the jobs table."""

    __tablename__ = "job_totals"

    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    # Index of the smallest duration bound the run time is under (len(bounds) above all; -1 never started).
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    jobs: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[float] = mapped_column(Float)


class LiveJobDelta(Base):
    """A change to the number of queued or running jobs of one type, appended in the transaction that made it
    (issue 26): ``/metrics`` sums these few rows instead of counting the backlog; a scrape folds them into one
    row per (type, status) now and then. Appended, never updated: no two writers wait on one row."""

    __tablename__ = "live_job_deltas"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    jobs: Mapped[int] = mapped_column(BigInteger)


class JobEvent(Base):
    """A state change or progress report of a job, in order."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    data: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobTag(Base):
    """One tag of a job: listings filter on ``tag`` through this table (portable, indexed)."""

    __tablename__ = "job_tags"
    __table_args__ = (Index("ix_job_tags_tag_job", "tag", "job_id"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class JobLog(Base):
    """One log line a worker wrote while it ran a job; only each job's latest lines are kept."""

    __tablename__ = "job_logs"
    __table_args__ = (Index("ix_job_logs_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(10))
    logger: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Worker(Base):
    """A worker process that takes jobs: registered at start, its ``last_seen`` renewed by a heartbeat."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    node: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    gpu: Mapped[dict | None] = mapped_column(JSON)
    queues: Mapped[list] = mapped_column(JSON)
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    current_job: Mapped[str | None] = mapped_column(String(36))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class WorkerDrain(Base):
    """A worker host (container) told to take no new job: the autoscaler stops it once its job has ended (issue 23)."""

    __tablename__ = "worker_drains"

    host: Mapped[str] = mapped_column(String(200), primary_key=True)
    service: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FairTurn(Base):
    """A tenant's pass in a queue's fair share (``db/fairshare.py``); tenant ``*`` holds the queue's virtual time."""

    __tablename__ = "fair_turns"

    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pass_value: Mapped[float] = mapped_column(Float)


class Dataset(Base):
    """An uploaded dataset, stored under a server-made file name."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    info: Mapped[dict] = mapped_column(JSON)
    # A table's or text dataset's inferred schema and first rows, computed at upload (None for .npz files
    # and for datasets uploaded before it was kept): {"schema": [...], "preview": {"columns", "rows"}}.
    profile: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Model(Base):
    """A named model of a tenant; its versions hold the files."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_models_tenant_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """One trained version of a model, linked to the job that trained it (at most one per job)."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    training_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), unique=True)
    path: Mapped[str] = mapped_column(Text)
    architecture: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict] = mapped_column(JSON)
    signature: Mapped[dict] = mapped_column(JSON)
    # Where the version came from: training job, dataset (id, name, sha256) and spec; kept after they are deleted.
    lineage: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelAlias(Base):
    """A movable name (``production``, ``staging``) of one version of a model."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias", name="uq_model_aliases_model_alias"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelEvent(Base):
    """An audit row of the registry: an alias set, moved or removed, a version or model deleted.

    No foreign key to the model: the history outlives what it describes."""

    __tablename__ = "model_events"
    __table_args__ = (Index("ix_model_events_tenant_model", "tenant_id", "model_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(36))
    model_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JSON)
    key_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookSecret(Base):
    """A tenant's webhook signing secret: kept as is (it must sign), shown only when created or rotated."""

    __tablename__ = "webhook_secrets"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WebhookDelivery(Base):
    """The webhook outbox: one notification of a job's terminal state, written in the transaction of that
    state change and sent (at least once) by a worker's sender. No foreign key to the job: a notification
    outlives a job deleted before it was delivered."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The sender reads pending deliveries by due time; delivered and given-up ones stay out of the index.
        Index(
            "ix_webhook_deliveries_pending_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_job_id", "job_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    # The job's record when it ended (db.webhooks.snapshot); the body is its API presentation.
    record: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UploadSession(Base):
    """A resumable dataset upload in progress (issue 21): its parts lie in the artifact store until it completes."""

    __tablename__ = "upload_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # "api": parts sent through the API; "presigned": parts PUT straight to the object store.
    mode: Mapped[str] = mapped_column(String(16))
    # The parts' folder (file store) or the object the multipart upload becomes (S3).
    location: Mapped[str] = mapped_column(Text)
    multipart_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open, completing, completed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
