"""The one settings object, read from the environment (prefix ``TENSORQ_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path.home() / ".tensorq"


class Settings(BaseSettings):
    """Everything a TensorQ process can be configured with; nothing else reads ``os.environ``."""

    model_config = SettingsConfigDict(env_prefix="TENSORQ_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_HOME / 'tensorq.sqlite3'}",
        description="SQLAlchemy URL of the job database (Postgres in production).",
    )
    broker_url: str = Field(
        default="redis://localhost:6379/0",
        description="Celery broker URL; only job ids travel through it.",
    )
    artifact_dir: Path = Field(
        default=DEFAULT_HOME / "artifacts",
        description="Root folder for uploads, checkpoints, models and job artifacts.",
    )
    data_cache_dir: Path | None = Field(
        default=None,
        description="Where data made once is cached for every tenant (builtin:spoken_digits); "
        "default: artifact_dir/cache (issue 24).",
    )
    gpu: str = Field(
        default="auto",
        description="GPU a worker is pinned to: an index, 'none' for the CPU, or 'auto'.",
    )
    task_events: bool = Field(
        default=True,
        description="Workers send Celery task events (for Flower and `celery events`); false turns them off.",
    )
    max_body_bytes: int = Field(default=16 * 1024 * 1024, description="Largest JSON request body.")
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, description="Largest dataset upload.")
    max_dataset_array_bytes: int = Field(
        default=1024**3, ge=1, description="What an uploaded .npz's arrays may unpack to (checked from their headers)."
    )
    max_cell_bytes: int = Field(
        default=1024,
        ge=1,
        description="Longest cell of an uploaded table (CSV or Parquet), in UTF-8 bytes (413 cell_too_large above).",
    )
    max_inline_rows: int = Field(default=1000, description="Predict results with more rows become an artifact.")
    max_wait_s: float = Field(default=30.0, description="Longest ?wait= long-poll the API honours.")
    max_waits_per_tenant: int = Field(
        default=512,
        ge=1,
        description="Long-polls (and event streams) one tenant may hold at once per API process (more: 429); a "
        "fairness guard: under gevent a wait holds no thread.",
    )
    max_waits: int = Field(
        default=2048,
        ge=1,
        description="Long-polls held at once per API process (more: 429). Under api_worker_class=gthread each "
        "holds a thread: keep it below --threads.",
    )
    wait_reserve: int = Field(
        default=64,
        ge=0,
        description="Of max_waits, slots only a tenant holding no long-poll may take: tenants already waiting are "
        "refused (429) once only these are free, so a quiet tenant still gets its wait.",
    )
    lease_s: float = Field(default=60.0, description="How long a worker's claim lives without a heartbeat.")
    heartbeat_s: float = Field(default=10.0, description="How often a running job renews its lease.")
    publish_grace_s: float = Field(default=120.0, description="Queued jobs older than this are re-published.")
    reaper_interval_s: float = Field(default=15.0, description="How often a worker runs the reaper.")
    broker_check_s: float = Field(
        default=2.0,
        ge=0,
        description="How often a worker checks the broker's marker key (0: never); a broker that lost its data"
        " (flushed, restarted without it) has every queued job published again at once, not after publish_grace_s.",
    )
    job_retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Finished jobs (results, events, logs, artifacts) older than this are deleted by the reaper; "
        "models they trained stay. Unset: kept until deleted.",
    )
    db_retry_attempts: int = Field(
        default=8,
        ge=1,
        le=30,
        description="Tries of a worker's claim and final write while the database is unavailable, 0.5 s doubling "
        "to 8 s apart (8: 31.5 s); after them the job is left to its lease and the reaper.",
    )
    default_max_attempts: int = Field(default=3, ge=1, le=20)
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names, addresses or CIDR blocks a job's callback_url may reach although they are "
        'internal (loopback, private, link-local), e.g. ["127.0.0.1", "10.1.0.0/16", "hooks.corp"] (JSON).',
    )
    webhook_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Deadline of a whole delivery attempt: connecting, sending and reading the answer together.",
    )
    webhook_concurrency: int = Field(
        default=8, ge=1, le=64, description="Deliveries a worker process sends at once (its sender's threads)."
    )
    webhook_tenant_concurrency: int = Field(
        default=2, ge=1, le=64, description="Deliveries of one tenant a worker process sends at once."
    )
    webhook_max_attempts: int = Field(default=12, ge=1, le=50, description="Deliveries tried before giving up.")
    webhook_backoff_s: float = Field(
        default=10.0, gt=0, description="Wait after a delivery's first failed attempt; doubles after each one."
    )
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0, description="Longest wait between two attempts.")
    webhook_interval_s: float = Field(default=2.0, gt=0, description="How often a worker's sender reads the outbox.")
    progress_min_interval_s: float = Field(default=0.5, description="Rate bound on progress writes.")
    worker_stale_s: float = Field(
        default=30.0,
        gt=0,
        description="A worker not seen for this long is gone (it heartbeats every heartbeat_s): the reaper re-queues"
        " the running jobs it claimed (their leases not renewed this long either) and puts back the messages it took"
        " and never acknowledged.",
    )
    job_log_max_lines: int = Field(default=2000, ge=10, description="Log lines kept per job (the latest).")
    model_cache_size: int = Field(default=8, ge=1, description="Loaded models kept per worker process.")
    quota_submissions_per_minute: int = Field(default=600, ge=1, description="Job submissions per tenant per minute.")
    quota_queued_jobs: int = Field(default=1000, ge=1, description="Queued jobs a tenant may have at once.")
    max_batch_jobs: int = Field(
        default=500,
        ge=1,
        description='Jobs in one batch submission ({"jobs": [...]}); never more than the tenant\'s '
        "quota_submissions_per_minute, which a larger batch could never fit.",
    )
    quota_running_jobs: int = Field(default=8, ge=1, description="Jobs of one tenant running at once.")
    batch_max_jobs: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Micro-batching: a worker that takes a predict (or per-row explain) job on inline inputs claims "
        "with it up to this many queued jobs (in all) of the same tenant, model version and settings and runs one "
        "forward pass (explanation call) over them; 1 turns it off.",
    )
    batch_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="Micro-batching: how long a batch that is not full waits for more jobs before it runs (ms).",
    )
    job_memory_mb: int = Field(
        default=8192,
        ge=0,
        description="Memory one job may add to its worker process (an address-space cap while it runs; "
        "0 turns it off); over it the job fails with resource_exhausted.",
    )
    worker_max_memory_mb: int = Field(
        default=12288,
        ge=0,
        description="Resident memory after which a pool child is replaced once its job ends (0: never).",
    )
    max_model_params: int = Field(
        default=50_000_000,
        ge=1,
        description="Largest model (estimated parameters) a train spec or an uploaded .keras may ask for; "
        "per tenant in tenant_quotas.",
    )
    max_job_memory_mb: int = Field(
        default=0,
        ge=0,
        description="Most memory a train spec (weights, gradients, optimizer state, a batch's activations) or an "
        "uploaded .keras (weights, a predict batch's activations) may need, estimated before it is built; "
        "0: job_memory_mb; per tenant in tenant_quotas.",
    )
    quota_dataset_bytes: int = Field(default=10 * 1024**3, ge=0, description="Dataset storage per tenant.")
    quota_model_bytes: int = Field(default=20 * 1024**3, ge=0, description="Model storage per tenant.")
    tenant_quotas: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description='Per-tenant overrides by tenant name, e.g. {"acme": {"quota_running_jobs": 2}} (JSON); '
        '"weight" (default 1) is the tenant\'s share of each queue under fair share.',
    )
    ratelimit_storage_url: str | None = Field(
        default=None, description="Storage of the rate limiter (limits URL); default the broker's Redis, else memory."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS; empty turns CORS off.")
    queue_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="Prefix of the Celery queue names, so stacks sharing one Redis never take each other's jobs.",
    )
    autoscale_service: str = Field(default="worker-cpu", description="Compose service whose replicas are scaled.")
    autoscale_project: str | None = Field(
        default=None, description="Compose project of that service (default: the autoscaler container's own)."
    )
    autoscale_queues: list[str] = Field(
        default_factory=lambda: ["train", "predict", "explain"], description="Queues the scaled workers serve."
    )
    autoscale_min_workers: int = Field(default=1, ge=0, description="Fewest workers the autoscaler keeps.")
    autoscale_max_workers: int = Field(default=4, ge=1, description="Most workers the autoscaler starts.")
    autoscale_jobs_per_worker: int = Field(default=2, ge=1, description="Queued plus running jobs per worker aimed at.")
    autoscale_cooldown_s: float = Field(
        default=120.0, ge=0, description="How long fewer workers must suffice before the autoscaler removes any."
    )
    autoscale_interval_s: float = Field(default=5.0, gt=0, description="How often the autoscaler reads the backlog.")
    autoscale_metrics_port: int = Field(default=9100, ge=0, description="Port of the autoscaler's /metrics (0: off).")
    # issue 21: the artifact store by URL, the worker's model cache, datasets by reference.
    artifact_url: str | None = Field(
        default=None,
        description="Where stored bytes live: file:///srv/tensorq or s3://bucket/prefix; unset: file:// of "
        "artifact_dir.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="Endpoint of an S3-compatible store (MinIO, rclone serve s3); unset: AWS."
    )
    aws_access_key_id: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TENSORQ_AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID", "aws_access_key_id"),
        description="Access key of the S3 store (the standard AWS variable; unset: boto's own chain).",
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "TENSORQ_AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"
        ),
        description="Secret key of the S3 store (the standard AWS variable).",
    )
    aws_region: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TENSORQ_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION", "aws_region"),
        description="Region of the S3 store (the standard AWS variable).",
    )
    store_timeout_s: float = Field(
        default=5.0, gt=0, description="Connect and read timeout of one request to the S3 store."
    )
    scratch_dir: Path = Field(
        default=DEFAULT_HOME / "scratch",
        description="A process's local scratch folder: uploads being checked, local copies of stored files.",
    )
    model_cache_dir: Path = Field(
        default=DEFAULT_HOME / "model-cache", description="A worker's local copies of model versions."
    )
    model_cache_mb: int = Field(
        default=2048, ge=0, description="Disk a worker's model cache may fill (least recently used out; 0: no cache)."
    )
    dataset_url_prefixes: list[str] = Field(
        default_factory=list,
        description='URL prefixes datasets may be registered from by reference, e.g. ["s3://lake/events/"] (JSON); '
        "empty: none. Anything else is refused (403 dataset_url_forbidden) and never fetched.",
    )
    tenant_dataset_url_prefixes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Per-tenant dataset_url_prefixes by tenant name, e.g. {"acme": ["s3://acme-lake/"]} (JSON).',
    )
    # issue 23: fair share and drain-aware scale-down.
    fair_share_queues: list[str] = Field(
        default_factory=lambda: ["train", "explain"],
        description="Queues where tenants take turns by weight and priority orders a tenant's jobs (lowest number "
        "first): a delivery runs the next job of its queue by fair share. Other queues run their messages in the "
        "broker's order (priority, then age); predict is left out by default, its micro-batches already group "
        "jobs and each pick costs a few statements per delivery.",
    )
    autoscale_max_drain_s: float = Field(
        default=600.0,
        ge=0,
        description="Longest wait for a draining worker's job to end before the autoscaler stops it anyway (its "
        "job is then handed back).",
    )

    @field_validator("tenant_quotas")
    @classmethod
    def _positive_weights(cls, quotas: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        """A tenant's fair-share weight must be above 0."""
        for tenant, values in quotas.items():
            if "weight" in values and values["weight"] <= 0:
                raise ValueError(
                    f"tenant_quotas: the weight of tenant {tenant!r} must be above 0, got {values['weight']}"
                )
        return quotas

    def weight(self, tenant: str) -> float:
        """The fair-share weight of the tenant called ``tenant`` (default 1)."""
        return float(self.tenant_quotas.get(tenant, {}).get("weight", 1))

    # Jobs made of jobs (issue 22): sharded predict and explain.
    shard_rows: int = Field(
        default=0,
        ge=0,
        description="A predict or explain on more rows than this (inline, or an uploaded dataset) becomes a parent "
        "with one child job per range of this many rows, run on any worker; 0 turns it off (a spec's 'shards' "
        "still asks for it).",
    )
    max_shards: int = Field(default=64, ge=2, le=10_000, description="The most shards one predict or explain has.")
    max_tune_trials: int = Field(default=200, ge=1, le=10_000, description="The most trials one tune job runs.")
    # issue 26: waits that hold no thread, event streams.
    api_worker_class: Literal["gevent", "gthread"] = Field(
        default="gevent",
        description="gunicorn worker of `tensorq api`: gevent (a long-poll parks a greenlet, holds no thread) or "
        "gthread (each long-poll holds one of --threads; lower max_waits below them).",
    )
    api_extra_connections: int = Field(
        default=1024, ge=1, description="gevent: connections per API process beyond max_waits (its other requests)."
    )
    event_stream_s: float = Field(
        default=300.0,
        gt=0,
        description="Longest one Server-Sent Events stream of a job lasts (a client such as EventSource reconnects).",
    )
    # issue 23: GPU workers autoscaled, one per GPU found through NVML.
    autoscale_gpu_service: str = Field(
        default="",
        description="Compose service whose container is copied into one worker per GPU (e.g. worker-gpu0, made "
        "with `docker compose --profile gpu create`); empty: GPU workers are not autoscaled.",
    )
    autoscale_gpu_queues: list[str] = Field(
        default_factory=lambda: ["train", "predict", "explain"], description="Queues the GPU workers serve."
    )
    autoscale_gpu_min_workers: int = Field(default=0, ge=0, description="Fewest GPU workers the autoscaler keeps.")
    autoscale_gpu_jobs_per_worker: int = Field(
        default=1, ge=1, description="Queued plus running jobs per GPU worker aimed at."
    )
    autoscale_excluded_gpus: list[str] = Field(
        default_factory=list,
        description='GPUs the autoscaler never places a worker on, by index or UUID, e.g. ["1", "GPU-8f3e..."] (JSON).',
    )
    # issue 23: cold start from zero workers.
    autoscale_zero_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the autoscaler reads the backlog while it keeps no worker (min_workers 0), so a "
        "job submitted then starts one within this, not within autoscale_interval_s.",
    )
    worker_keras_extras: bool = Field(
        default=False,
        description="Let Keras import pandas, matplotlib and scikit-learn (and TensorFlow SciPy) with TensorFlow "
        "in a worker: only its DataFrame inputs and scikit-learn wrappers use them, and they cost a third of the "
        "import (each is still imported where TensorQ's own code needs it).",
    )
    # issue 21, item 5: streaming
    stream_above_mb: int = Field(
        default=512,
        ge=0,
        description="A table (CSV or Parquet) that decodes to more than this many MB is streamed in chunks by "
        "training (classifiers) and predict instead of loaded whole; 0 streams every table.",
    )
    # issue 26: per-job cost
    auth_cache_s: float = Field(
        default=2.0,
        ge=0,
        description="How long an API process trusts an API key it checked (0: read it on every request). A key "
        "revoked through another process is refused there after at most this long; through the same process at once.",
    )

    # issue 21 (large uploads): resumable chunked uploads through the API, presigned multipart straight to S3.
    max_chunked_upload_bytes: int = Field(
        default=50 * 1024**3, ge=1, description="Largest dataset sent as a resumable chunked (or multipart) upload."
    )
    upload_chunk_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1,
        description="Size of each part of a chunked upload (the last may be shorter); the API holds at most one. "
        "S3 needs at least 5 MiB for every part but the last.",
    )
    upload_expiry_s: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long an upload session stays open; the reaper then removes its parts (and aborts its "
        "S3 multipart upload).",
    )
    upload_url_expiry_s: int = Field(
        default=3600, ge=60, le=7 * 24 * 3600, description="Lifetime of a presigned part URL (S3 store)."
    )
    s3_public_endpoint_url: str | None = Field(
        default=None,
        description="The S3 endpoint clients reach, written into presigned part URLs; unset: s3_endpoint_url.",
    )
    readyz_store_timeout_s: float = Field(
        default=2.0, gt=0, description="How long /readyz waits for the artifact store to answer."
    )

    def quota(self, tenant: str, name: str) -> int:
        """The quota ``name`` (e.g. ``quota_running_jobs``) of the tenant called ``tenant``."""
        return int(self.tenant_quotas.get(tenant, {}).get(name, getattr(self, name)))

    def dataset_prefixes(self, tenant: str) -> list[str]:
        """The URL prefixes the tenant called ``tenant`` may register datasets from."""
        return self.tenant_dataset_url_prefixes.get(tenant, self.dataset_url_prefixes)

    def memory_budget_mb(self, tenant: str) -> int:
        """The most memory (MB) one job of ``tenant`` may be estimated to need; 0 for no limit."""
        return self.quota(tenant, "max_job_memory_mb") or self.job_memory_mb

    def job_dir(self, job_id: str) -> Path:
        """The artifact folder of one job."""
        return Path(self.artifact_dir) / "jobs" / job_id

    def cache_dir(self) -> Path:
        """Where data made once and shared by every tenant is cached (builtin:spoken_digits; issue 24)."""
        return Path(self.data_cache_dir) if self.data_cache_dir else Path(self.artifact_dir) / "cache"

    def store_url(self) -> str:
        """The artifact store's URL: ``artifact_url``, else the ``file://`` URL of ``artifact_dir``."""
        return self.artifact_url or Path(self.artifact_dir).expanduser().resolve().as_uri()

    def dataset_dir(self, tenant_id: str) -> Path:
        """The upload folder of one tenant."""
        return Path(self.artifact_dir) / "datasets" / tenant_id
