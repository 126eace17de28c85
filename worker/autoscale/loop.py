"""The autoscaler's loop: read the backlog, decide, set the replicas, log and record every decision."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from db.backlog import TypeBacklog
from worker.autoscale.metrics import AutoscaleMetrics
from worker.autoscale.policy import Decision, Policy, QueueLoad, ScaleState, decide, demand
from worker.autoscale.replicas import Replica, Replicas

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


class Fleet(Protocol):
    """What the autoscaler reads and writes about the workers (``db.drains.Drains`` on the real database)."""

    def busy_hosts(self) -> set[str]:
        """Hosts that run a job now."""
        ...

    def marked(self, service: str) -> dict[str, datetime]:
        """Hosts of ``service`` told to drain."""
        ...

    def mark(self, hosts: Iterable[str], service: str) -> None:
        """Tell ``hosts`` to take no new job."""
        ...

    def clear(self, hosts: Iterable[str]) -> None:
        """Forget the drain marks of ``hosts``."""
        ...


@dataclass(frozen=True)
class Seen:
    """One step's reads: the backlog, the running replicas, who is busy and who drains."""

    loads: list[QueueLoad]
    members: list[Replica]
    busy: set[str]
    marked: set[str]


def removal_order(serving: list[Replica], busy: set[str]) -> list[Replica]:
    """The replicas to remove first: idle ones before busy ones, the newest first within each."""
    return sorted(serving, key=lambda r: (r.host in busy, -r.number))


class Autoscaler:
    """Sets the replicas from the backlog, one decision per step; a replica is removed only once drained.

    Scaling down marks the replicas to remove (idle ones first) as draining; from the next step on, each
    marked replica is stopped as soon as nothing runs on it, or after ``max_drain_s`` even so (a hand-back).
    Marking one step and stopping at a later one closes the race with a claim made just before the mark.
    A step whose reads fail keeps the replicas as they are.
    """

    def __init__(
        self,
        policy: Policy,
        queues: Iterable[str],
        read_backlog: Callable[[], list[QueueLoad]],
        replicas: Replicas,
        fleet: Fleet,
        *,
        service: str = "worker-cpu",
        max_drain_s: float = 600.0,
        metrics: AutoscaleMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.queues = tuple(queues)
        self.read_backlog = read_backlog
        self.replicas = replicas
        self.fleet = fleet
        self.service = service
        self.max_drain_s = max_drain_s
        self.metrics = metrics
        self.clock = clock
        self.state = ScaleState()
        self.drain_started: dict[str, float] = {}
        self._last_reason: str | None = None

    def read(self) -> Seen | None:
        """This step's reads, or None (logged, counted) when the database or Docker cannot be read."""
        try:
            loads = self.read_backlog()
            members = self.replicas.members()
            busy = self.fleet.busy_hosts()
            marked = set(self.fleet.marked(self.service))
        except Exception as exc:  # noqa: BLE001 - any failed read: keep the replicas as they are
            log.warning("autoscale: keeping the replicas as they are: cannot read the backlog or replicas: %s", exc)
            if self.metrics is not None:
                self.metrics.read_failed(type(exc).__name__)
            return None
        return Seen(loads, members, busy, marked)

    def step(self) -> Decision | None:
        """Read, decide, act; returns the decision (None when the reads failed and nothing was done)."""
        seen = self.read()
        if seen is None:
            return None
        now = self.clock()
        draining = [m for m in seen.members if m.host in seen.marked]
        serving = [m for m in seen.members if m.host not in seen.marked]
        jobs = demand(seen.loads, self.queues)
        decision = decide(len(serving), jobs, self.policy, self.state, now)
        self.state = decision.state
        if decision.target > len(serving):
            self.replicas.start(decision.target - len(serving))
        elif decision.target < len(serving):
            victims = removal_order(serving, seen.busy)[: len(serving) - decision.target]
            self.fleet.mark([v.host for v in victims], self.service)
            self.drain_started.update({v.host: now for v in victims})
        stopped = self._finish_drains(draining, seen.busy, now)
        self._forget_gone(seen)
        if self.metrics is not None:
            self.metrics.observe(seen.loads, decision, draining=len(draining) - len(stopped))
        self._log(decision, seen.loads)
        return decision

    def _finish_drains(self, draining: list[Replica], busy: set[str], now: float) -> list[Replica]:
        """Stop each draining replica that runs nothing, or has drained for ``max_drain_s``; those stopped."""
        stopped = []
        for replica in draining:
            since = self.drain_started.setdefault(replica.host, now)  # marked before a restart: from now
            if replica.host in busy and now - since < self.max_drain_s:
                continue
            how = "handback" if replica.host in busy else "drained"
            if how == "handback":
                log.warning(
                    "autoscale: %s still busy after %.0fs of drain: stopping it (its job is handed back)",
                    replica.host,
                    now - since,
                )
            self.replicas.stop(replica)
            self.fleet.clear([replica.host])
            self.drain_started.pop(replica.host, None)
            stopped.append(replica)
            if self.metrics is not None:
                self.metrics.stopped(how)
        return stopped

    def _forget_gone(self, seen: Seen) -> None:
        """Clear the marks of this service's hosts that no longer run (stopped by hand, or crashed)."""
        hosts = {m.host for m in seen.members}
        gone = [host for host in seen.marked if host not in hosts]
        if gone:
            self.fleet.clear(gone)
            for host in gone:
                self.drain_started.pop(host, None)

    def _log(self, decision: Decision, loads: list[QueueLoad]) -> None:
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

    def run(self, interval_s: float, stop: threading.Event, zero_interval_s: float | None = None) -> None:
        """Step every ``interval_s`` (``zero_interval_s`` while at zero: ``next_wait``) until ``stop`` is set; a
        failed step is logged and retried."""
        while not stop.is_set():
            decision = None
            try:
                decision = self.step()
            except Exception:  # noqa: BLE001 - database or Docker hiccup: keep the loop alive
                log.exception("autoscale step failed")
            stop.wait(next_wait(decision, interval_s, zero_interval_s))


def next_wait(decision: Decision | None, interval_s: float, zero_interval_s: float | None) -> float:
    """Seconds until the next step: ``zero_interval_s`` (when shorter) after a step that kept zero workers, so a
    job submitted then starts the first worker within it (a cold start); else ``interval_s``."""
    at_zero = decision is not None and decision.current == 0 and decision.target == 0
    if at_zero and zero_interval_s is not None:
        return min(interval_s, zero_interval_s)
    return interval_s
