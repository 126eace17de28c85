"""The scaling decision as pure functions: backlog in, replica count out (no Docker, no database)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class QueueLoad:
    """Backlog of one queue: jobs waiting, jobs running, and how long the oldest has waited."""

    queue: str
    queued: int
    running: int
    oldest_queued_s: float = 0.0


@dataclass(frozen=True)
class Policy:
    """The bounds and targets the autoscaler works within."""

    min_workers: int
    max_workers: int
    jobs_per_worker: int
    cooldown_s: float

    def __post_init__(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers:
            raise ValueError(f"need 0 <= min_workers <= max_workers, got {self.min_workers} and {self.max_workers}")
        if self.jobs_per_worker < 1:
            raise ValueError("jobs_per_worker must be at least 1")


@dataclass(frozen=True)
class ScaleState:
    """What the policy remembers between steps: since when fewer workers would have sufficed."""

    surplus_since: float | None = None


@dataclass(frozen=True)
class Decision:
    """One step's outcome: the replica count to set, why, and the state to carry to the next step."""

    current: int
    desired: int
    target: int
    reason: str
    state: ScaleState

    @property
    def changes(self) -> bool:
        """Whether the replica count moves."""
        return self.target != self.current


def demand(loads: Iterable[QueueLoad], queues: Iterable[str]) -> int:
    """Queued plus running jobs on the ``queues`` the scaled workers serve."""
    served = set(queues)
    return sum(load.queued + load.running for load in loads if load.queue in served)


def desired_workers(jobs: int, policy: Policy) -> int:
    """Workers needed for ``jobs`` at ``jobs_per_worker`` each, within the bounds."""
    return max(policy.min_workers, min(policy.max_workers, math.ceil(jobs / policy.jobs_per_worker)))


def decide(current: int, jobs: int, policy: Policy, state: ScaleState, now: float) -> Decision:
    """Scale up at once; scale down only after fewer workers have sufficed for ``cooldown_s`` without a break.

    The time condition is the hysteresis: a backlog that dips for one step and comes back never removes a
    worker. Out-of-bounds counts (someone scaled by hand) are brought back into bounds at once.
    """
    desired = desired_workers(jobs, policy)
    if current < policy.min_workers or current > policy.max_workers:
        target = max(policy.min_workers, min(policy.max_workers, current))
        return Decision(current, desired, target, "out of bounds", ScaleState())
    if desired > current:
        return Decision(current, desired, desired, f"{jobs} jobs need {desired} workers", ScaleState())
    if desired == current:
        return Decision(current, desired, current, "steady", ScaleState())
    since = state.surplus_since if state.surplus_since is not None else now
    waited = now - since
    if waited >= policy.cooldown_s:
        return Decision(
            current, desired, desired, f"{jobs} jobs need {desired} workers for {waited:.0f}s", ScaleState()
        )
    return Decision(
        current,
        desired,
        current,
        f"cooling down ({waited:.0f}/{policy.cooldown_s:.0f}s)",
        replace(state, surplus_since=since),
    )
