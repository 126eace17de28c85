"""Per-tenant quotas at the API: submissions per minute (the ``limits`` library's sliding window counter),
queued jobs, storage."""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute, storage, strategies

from db.database import Database
from db.records import Principal
from tensorq.core.errors import PayloadTooLarge, QuotaExceeded

__all__ = ["QuotaExceeded", "Quotas", "limiter_storage_url"]
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore


def limiter_storage_url(settings: Settings) -> str:
    """The rate limiter's storage: the configured URL, else the broker's Redis, else this process's memory."""
    if settings.ratelimit_storage_url:
        return settings.ratelimit_storage_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


class Quotas:
    """Checks a tenant's quotas before anything is written."""

    def __init__(self, settings: Settings, db: Database, store: ArtifactStore | None = None) -> None:
        self.settings = settings
        self.db = db
        self.store = store or ArtifactStore.from_settings(settings)
        # A sliding window of two counters (this minute's and the last one's, weighted): two Redis keys per
        # tenant whatever the quota, where a moving window kept one entry per submission (40 k at a high quota).
        self._window = strategies.SlidingWindowCounterRateLimiter(
            storage.storage_from_string(limiter_storage_url(settings))
        )

    def submissions_per_minute(self, who: Principal) -> int:
        """The tenant's per-minute submission quota (a batch may not be larger: it could never be accepted)."""
        return self.settings.quota(who.tenant_name, "quota_submissions_per_minute")

    def check_submission(self, who: Principal, cost: int = 1, *, count: bool = True) -> None:
        """Count ``cost`` submissions (a batch's jobs) against the per-minute limit; with ``count=False`` only
        check that they would fit now (a batch asks before it spends time validating its jobs)."""
        per_minute = self.submissions_per_minute(who)
        item = RateLimitItemPerMinute(per_minute)
        check = self._window.hit if count else self._window.test
        if not check(item, "submit", who.tenant_id, cost=cost):
            reset_at, _remaining = self._window.get_window_stats(item, "submit", who.tenant_id)
            retry = max(1, math.ceil(reset_at - time.time()))
            raise QuotaExceeded(
                f"more than {per_minute} submissions in a minute",
                retry_after=retry,
                details={"quota": "quota_submissions_per_minute", "limit": per_minute},
            )

    def queued_limit(self, who: Principal) -> int:
        """How many queued jobs the tenant may have; ``JobStore.submit`` counts and inserts atomically under it."""
        return self.settings.quota(who.tenant_name, "quota_queued_jobs")

    def dataset_bytes_limit(self, who: Principal) -> int:
        """The tenant's dataset storage; ``DatasetCatalog.add`` sums and inserts atomically under it."""
        return self.settings.quota(who.tenant_name, "quota_dataset_bytes")

    def check_dataset_bytes(self, who: Principal, incoming: int) -> None:
        """Refuse early an upload whose declared length would take the tenant over its dataset storage."""
        limit = self.dataset_bytes_limit(who)
        used = sum(d.size_bytes for d in self.db.datasets.list(who.tenant_id))
        if used + incoming > limit:
            raise PayloadTooLarge(
                "the upload would exceed the tenant's dataset storage quota",
                code="storage_quota_exceeded",
                details={"quota": "quota_dataset_bytes", "limit": limit, "used": used},
            )

    def check_model_bytes(self, who: Principal, incoming: int = 0) -> None:
        """Refuse new models (training or upload) once the tenant's model files fill its storage quota."""
        limit = self.settings.quota(who.tenant_name, "quota_model_bytes")
        used = 0
        for model in self.db.models.list(who.tenant_id):
            for version in model.versions:
                used += self.store.size(version.path)
        if used + incoming > limit or (incoming == 0 and used >= limit):
            raise PayloadTooLarge(
                "the tenant's model storage quota is full",
                code="storage_quota_exceeded",
                details={"quota": "quota_model_bytes", "limit": limit, "used": used},
            )
