"""The autoscaler's loop: read the backlog, decide, set the replicas, log and record every decision."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from db.backlog import TypeBacklog
from worker.autoscale.metrics import AutoscaleMetrics
from worker.autoscale.policy import Decision, Policy, QueueLoad, ScaleState, decide, demand
from worker.autoscale.replicas import Replicas

log = logging.getLogger("tensorq.autoscale")


def queue_loads(backlog: Iterable[TypeBacklog]) -> list[QueueLoad]:
    """Per-type backlog folded into per-queue load through the routing table (imports share predict)."""
    from tensorq.core.routing import ROUTES

    merged: dict[str, QueueLoad] = {}
    for row in backlog:
        queue = ROUTES[row.type].queue if row.type in ROUTES else row.type
        seen = merged.get(queue, QueueLoad(queue, 0, 0, 0.0))
        merged[queue] = QueueLoad(
            queue, seen.queued + row.queued, seen.running + row.running, max(seen.oldest_queued_s, row.oldest_queued_s)
        )
    return sorted(merged.values(), key=lambda load: load.queue)


class Autoscaler:
    """Sets ``replicas`` from the backlog, one decision per step."""

    def __init__(
        self,
        policy: Policy,
        queues: Iterable[str],
        read_backlog: Callable[[], list[QueueLoad]],
        replicas: Replicas,
        metrics: AutoscaleMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.queues = tuple(queues)
        self.read_backlog = read_backlog
        self.replicas = replicas
        self.metrics = metrics
        self.clock = clock
        self.state = ScaleState()
        self._last_reason: str | None = None

    def step(self) -> Decision:
        """Read, decide, act; returns the decision."""
        loads = self.read_backlog()
        jobs = demand(loads, self.queues)
        decision = decide(self.replicas.count(), jobs, self.policy, self.state, self.clock())
        self.state = decision.state
        if decision.changes:
            self.replicas.scale_to(decision.target)
        if self.metrics is not None:
            self.metrics.observe(loads, decision)
        reason_kind = decision.reason.split(" (")[0]
        if decision.changes or reason_kind != self._last_reason:
            queued = ", ".join(f"{load.queue}={load.queued}+{load.running}" for load in loads) or "empty"
            log.info(
                "autoscale: %d -> %d workers (desired %d): %s [queued+running: %s]",
                decision.current,
                decision.target,
                decision.desired,
                decision.reason,
                queued,
            )
        self._last_reason = reason_kind
        return decision

    def run(self, interval_s: float, stop: threading.Event) -> None:
        """Step every ``interval_s`` until ``stop`` is set; a failed step is logged and retried."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - database or Docker hiccup: keep the loop alive
                log.exception("autoscale step failed")
            stop.wait(interval_s)
