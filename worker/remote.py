"""Celery's remote control on TensorQ workers: ``celery control revoke <job id>`` cancels the job.

The Celery task id is the job id. Celery's own ``revoke`` only flags an id in the memory of the
workers that hear it, so the job would stay ``queued`` in SQL and be published again by the reaper;
here the command cancels the job through the store (a running job stops at its next batch or epoch
boundary), flags the id revoked so a message still in a queue is discarded, and refuses loudly, with
an error reply, a job that has already finished or does not exist. ``terminate`` is not honoured:
killing a pool child in the middle of TensorFlow would lose the lease and the checkpoint.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from celery.signals import task_revoked
from celery.utils.functional import maybe_list
from celery.worker import state as worker_state
from celery.worker.control import control_command

from tensorq.core.errors import NotFound, TensorQError
from tensorq.core.settings import Settings

if TYPE_CHECKING:
    from db.database import Database

log = logging.getLogger(__name__)
_databases: dict[str, Database] = {}
_lock = threading.Lock()


def _forget_databases() -> None:
    """In a forked child: never touch the parent's pooled connections (SQLAlchemy's advice)."""
    for database in _databases.values():
        database.engine.dispose(close=False)
    _databases.clear()


os.register_at_fork(after_in_child=_forget_databases)


def _database(settings: Settings) -> Database:
    """The worker parent's database handle, made on first use (Celery's reply deadline is 1 s by default)."""
    from db.database import Database

    with _lock:
        if settings.database_url not in _databases:
            _databases[settings.database_url] = Database(settings)
        return _databases[settings.database_url]


def cancel_job(settings: Settings, job_id: str) -> str:
    """Cancel ``job_id`` through the job store; returns its status after; Conflict when it has finished."""
    store = _database(settings).jobs
    job = store.get_any(job_id)
    if job.status == "cancelled" or (job.status == "running" and job.cancel_requested):
        return job.status
    return store.cancel(job.tenant_id, job_id).status


@control_command(variadic="task_id", signature="[id1 [id2 [... [idN]]]]")
def revoke(state: Any, task_id: str | list[str], terminate: bool = False, signal: Any = None, **_: Any) -> dict:
    """Cancel TensorQ jobs by id (the task id is the job id) through the job store, and flag them revoked."""
    settings: Settings = state.app.conf.tensorq_settings
    done: list[str] = []
    refused: list[str] = []
    for job_id in sorted(set(maybe_list(task_id) or [])):
        try:
            status = cancel_job(settings, job_id)
        except NotFound:
            refused.append(f"{job_id}: no such job")
            continue
        except TensorQError as exc:
            refused.append(f"{job_id}: {exc.message}")
            continue
        worker_state.revoked.add(job_id)
        done.append(f"{job_id} {'cancel requested' if status == 'running' else status}")
    note = "; terminate ignored: a running job stops at its next batch boundary" if terminate else ""
    if refused:
        return {"error": f"refused: {', '.join(refused)}" + (f"; done: {', '.join(done)}" if done else "") + note}
    return {"ok": f"jobs cancelled through the job store: {', '.join(done)}{note}"}


@task_revoked.connect
def _cancel_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    """A message for a revoked id was discarded: make sure its job is cancelled too (idempotent)."""
    settings = getattr(getattr(sender, "app", None), "conf", {}).get("tensorq_settings")
    job_id = getattr(request, "id", None)
    if settings is None or not job_id:
        return
    try:
        cancel_job(settings, job_id)
    except TensorQError as exc:
        log.info("revoked task %s: job not cancelled (%s)", job_id, exc.message)
    except Exception:  # noqa: BLE001 - the database may be away; the job stays as the store has it
        log.warning("revoked task %s: could not cancel its job", job_id, exc_info=True)
