"""``?wait=`` long-polls: answer at a job's next committed change, woken by change signals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from db.changes import ChangeListener, Watch
from db.jobs import JobStore
from db.records import JobRecord

# With signals, the row is still re-read this often in case one was lost (its publisher failed to reach Redis;
# a listener that reconnects wakes every reader itself). Rare: 1,000 waiters cost 100 reads a second.
SIGNALLED_REREAD_S = 10.0
# Without signals: the first re-read after this, then 1.5x longer each time, up to the cap.
FIRST_POLL_S = 0.02
POLL_CAP_S = 0.25


@contextmanager
def watching(changes: ChangeListener | None, job_id: str) -> Iterator[Watch]:
    """A watch on the job's change signals for the block (one that is never signalled without a listener)."""
    with changes.watch(job_id) if changes is not None else nullcontext(Watch(job_id)) as watch:
        yield watch


def read_when_changed(
    store: JobStore,
    changes: ChangeListener | None,
    tenant_id: str,
    job_id: str,
    wait_s: float,
    *,
    until_finished: bool = False,
) -> JobRecord:
    """The tenant's job once its revision changes (with ``until_finished``, once it has finished), or as
    it is after ``wait_s``; a finished job at once."""
    if wait_s <= 0:
        return store.get(tenant_id, job_id)
    deadline = time.monotonic() + wait_s
    with watching(changes, job_id) as watch:  # registered before the first read: no change is missed
        job = store.get(tenant_id, job_id)
        return next_change(store, changes, watch, job, deadline, until_finished=until_finished)


def next_change(
    store: JobStore,
    changes: ChangeListener | None,
    watch: Watch,
    job: JobRecord,
    deadline: float,
    *,
    until_finished: bool = False,
) -> JobRecord:
    """``job`` read again once its revision changed (with ``until_finished``, once it has finished), or as it is
    at ``deadline`` (``time.monotonic()``); a finished job at once. ``watch`` was registered before ``job`` was read."""
    pause = FIRST_POLL_S
    while not job.terminal and (left := deadline - time.monotonic()) > 0:
        signalled = changes is not None and changes.connected.is_set()
        woken = watch.wait(min(SIGNALLED_REREAD_S if signalled else pause, left))
        pause = min(pause * 1.5, POLL_CAP_S)
        if woken and until_finished and watch.only_unfinished():
            continue  # the claim's signal: the job has not finished through it, no need to read it
        latest = store.get(job.tenant_id, job.id)
        if latest.revision != job.revision and not until_finished:
            return latest
        job = latest
    return job
