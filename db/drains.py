"""Drains: worker hosts (containers) told to take no new job, and which hosts run a job now (issue 23).

The autoscaler marks a host it means to remove, a worker on a marked host gives back the messages it receives
instead of claiming them, and the autoscaler stops the host once nothing runs there: a scale-down then never
interrupts a job. The marks are per host, not per worker row, so a worker that registers later drains too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.models import Job, Worker, WorkerDrain, utcnow
from db.records import aware
from db.session import read_scope, write_scope
from db.transitions import status_is


def host_of(claimer: str) -> str:
    """The host part of a claimer name ``host:pid`` (``db.workers.claimer``)."""
    return claimer.rsplit(":", 1)[0]


class Drains:
    """Drain marks by host, and the hosts that run a job."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def mark(self, hosts: Iterable[str], service: str) -> None:
        """Tell the workers on ``hosts`` to take no new job (a host marked already keeps its first mark)."""
        for host in hosts:
            try:
                with write_scope(self._factory) as conn:
                    conn.execute(insert(WorkerDrain), {"host": host, "service": service, "since": utcnow()})
            except IntegrityError:
                continue

    def clear(self, hosts: Iterable[str]) -> None:
        """Forget the marks of ``hosts`` (stopped, or no longer to be removed)."""
        names = list(hosts)
        if names:
            with write_scope(self._factory) as conn:
                conn.execute(delete(WorkerDrain).where(WorkerDrain.host.in_(names)))

    def marked(self, service: str) -> dict[str, datetime]:
        """The hosts of ``service`` marked to drain, and since when."""
        with read_scope(self._factory) as conn:
            rows = conn.execute(select(WorkerDrain.host, WorkerDrain.since).where(WorkerDrain.service == service))
            return {host: aware(since) or utcnow() for host, since in rows}

    def is_draining(self, host: str) -> bool:
        """Whether the workers on ``host`` must take no new job."""
        with read_scope(self._factory) as conn:
            return conn.execute(select(WorkerDrain.host).where(WorkerDrain.host == host)).first() is not None

    def busy_hosts(self) -> set[str]:
        """Hosts running a job: a worker row that names its job, or a running job claimed from there."""
        with read_scope(self._factory) as conn:
            rows = conn.execute(select(Worker.host).where(Worker.current_job.is_not(None))).scalars().all()
            claimers = conn.execute(select(Job.worker).where(status_is("running"))).scalars().all()
        return set(rows) | {host_of(name) for name in claimers if name}
