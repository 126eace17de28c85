"""The database facade a process builds once from its settings."""

from __future__ import annotations

from sqlalchemy import text

from db.batch_claim import BatchStore
from db.changes import ChangeSignal, JobChanges, redis_url_of
from db.drains import Drains
from db.joblogs import JobLogStore
from db.jobs import JobStore
from db.jobstats import JobStats
from db.keys import KeyStore
from db.registry import DatasetCatalog, ModelRegistry
from db.session import make_engine, make_session_factory, session_scope
from db.uploads import UploadStore
from db.webhooks import WebhookOutbox
from db.workers import WorkerRegistry
from tensorq.core.settings import Settings


class Database:
    """One engine and the stores built on it; job changes are signalled on the broker's Redis."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.database_url)
        self.factory = make_session_factory(self.engine)
        redis_url = redis_url_of(settings.broker_url)
        self.changes = JobChanges(ChangeSignal(redis_url) if redis_url else None)
        self.jobs = JobStore(self.factory, lease_s=settings.lease_s, changes=self.changes)
        self.batches = BatchStore(self.factory, lease_s=settings.lease_s, changes=self.changes)
        self.stats = JobStats(self.factory)
        self.models = ModelRegistry(self.factory)
        self.datasets = DatasetCatalog(self.factory)
        self.keys = KeyStore(self.factory, cache_s=settings.auth_cache_s)
        self.workers = WorkerRegistry(self.factory, stale_s=settings.worker_stale_s)
        self.drains = Drains(self.factory)
        self.logs = JobLogStore(self.factory, max_lines=settings.job_log_max_lines)
        self.webhooks = WebhookOutbox(self.factory)
        self.uploads = UploadStore(self.factory)

    def ping(self) -> None:
        """Run one trivial query; raises Unavailable when the database cannot be reached."""
        with session_scope(self.factory) as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
