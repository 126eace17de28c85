"""Bounds on long-polls held at once in one API process: per tenant, and in all, so that waiting can never
take every request thread (other tenants and the health checks always find one free).

The last ``reserve`` slots of the total are kept for tenants that hold none: a tenant already waiting is
refused once only the reserve is free, so busy tenants fill at most ``total - reserve`` slots beyond their first
wait each, and a quiet tenant still gets its wait unless ``reserve`` tenants have each taken a first wait from
the reserve."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tensorq.core.errors import QuotaExceeded


class WaitSlots:
    """Counts the long-polls each tenant holds; one over a bound is refused with 429 ``too_many_waits``."""

    def __init__(self, per_tenant: int, total: int, reserve: int = 0) -> None:
        self.per_tenant = per_tenant
        self.total = total
        self.shared = total - min(max(reserve, 0), total - 1)  # what tenants already waiting may fill
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, tenant_id: str, wait_s: float) -> Iterator[None]:
        """Hold a slot while waiting ``wait_s`` seconds (no slot for a plain read, ``wait_s == 0``)."""
        if wait_s <= 0:
            yield
            return
        refused = self._take(tenant_id)
        if refused is not None:
            quota, limit = refused
            raise QuotaExceeded(
                f"at most {limit} long-polls may wait at once; retry, or poll without wait",
                code="too_many_waits",
                retry_after=1,
                details={"quota": quota, "limit": limit},
            )
        try:
            yield
        finally:
            self._give(tenant_id)

    @contextmanager
    def hold_if_free(self, tenant_id: str) -> Iterator[bool]:
        """Hold a slot if one is free (yields True), else yield False at once: for a wait the caller may skip."""
        taken = self._take(tenant_id) is None
        try:
            yield taken
        finally:
            if taken:
                self._give(tenant_id)

    def held(self) -> int:
        """Slots held now, all tenants together."""
        with self._lock:
            return sum(self._held.values())

    def _take(self, tenant_id: str) -> tuple[str, int] | None:
        """Take a slot for the tenant; the refusing quota's name and limit when none is free."""
        with self._lock:
            mine = self._held.get(tenant_id, 0)
            if mine >= self.per_tenant:
                return "max_waits_per_tenant", self.per_tenant
            held = sum(self._held.values())
            if held >= self.total:
                return "max_waits", self.total
            if mine and held >= self.shared:
                return "max_waits", self.shared  # the rest is the reserve for tenants with no wait
            self._held[tenant_id] = mine + 1
        return None

    def _give(self, tenant_id: str) -> None:
        """Give back one of the tenant's slots."""
        with self._lock:
            left = self._held[tenant_id] - 1
            if left:
                self._held[tenant_id] = left
            else:
                del self._held[tenant_id]
