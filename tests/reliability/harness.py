"""Real processes for the reliability drills: a Redis of the test's own, a cuttable TCP proxy in
front of Postgres, the API in a thread and `tensorq worker` processes that can be killed."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from db.database import Database
from db.records import TERMINAL
from db.transitions import LEGAL_TRANSITIONS
from tensorq.client import Event, Job, TensorQClient
from tensorq.core.settings import Settings
from tensorq.localstack import ApiProcess, WorkerProcess
from tests.services import RedisServer
from worker.drain import child_pids


class TcpProxy:
    """Forwards a local port to an upstream address; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0), reuse_port=False)  # a port no other worker holds
        self.port = self._listener.getsockname()[1]
        self._cut = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self._cut.set()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        """Accept connections again."""
        self._cut.clear()

    def close(self) -> None:
        """Stop listening."""
        self.cut()
        self._listener.close()


@dataclass
class Cluster:
    """Everything one drill runs on."""

    settings: Settings
    db: Database
    admin_db: Database
    redis: RedisServer
    proxy: TcpProxy
    api: ApiProcess
    client: TensorQClient
    home: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(self, queues: str = "train,predict,explain") -> WorkerProcess:
        """Start a real `tensorq worker` process and wait until its pool child has TensorFlow loaded."""
        worker = WorkerProcess(self.settings, self.home / f"worker-{len(self.workers)}.log", queues=queues, gpu="none")
        worker.start()
        self.workers.append(worker)
        wait_for(lambda: worker_ready(worker), timeout=90, what="worker ready")
        return worker

    def wait_status(self, job_id: str, statuses: set[str], timeout: float = 120) -> Job:
        """Long-poll until the job is in one of ``statuses``."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.job(job_id, wait=2)
            if job.status in statuses:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status}, wanted {statuses}")

    def wait_epoch(self, job_id: str, epoch: int, timeout: float = 120) -> Job:
        """Long-poll until the running job has reported ``epoch``."""
        return wait_for(
            lambda: (
                (j := self.client.job(job_id, wait=1)).status == "running"
                and (j.progress or {}).get("epoch", 0) >= epoch
                and j
            ),
            timeout=timeout,
            what=f"epoch {epoch}",
        )


def worker_ready(worker: WorkerProcess) -> bool:
    """Whether the worker's pool child has TensorFlow loaded (it does so before taking a job)."""
    if worker.proc is None or worker.proc.poll() is not None:
        raise RuntimeError(f"worker exited: {worker.log_path.read_text()[-2000:]}")
    for child in child_pids(worker.proc.pid):
        try:
            if "_pywrap_tensorflow" in Path(f"/proc/{child}/maps").read_text():
                return " ready." in worker.log_path.read_text()
        except OSError:
            continue
    return False


def kill_pool_children(worker: WorkerProcess) -> list[int]:
    """SIGKILL the worker's pool children (the parent restarts them)."""
    assert worker.proc is not None
    pids = child_pids(worker.proc.pid)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def state_events(cluster: Cluster, job_id: str) -> list[Event]:
    """The job's state events."""
    return [e for e in cluster.client.events(job_id) if e.kind == "state"]


def claims(cluster: Cluster, job_id: str) -> int:
    """How many times a worker claimed the job."""
    return sum(1 for e in state_events(cluster, job_id) if e.to_status == "running")


def check_parents(conn: Connection) -> None:
    """Every parent's running totals are its children's counts (a child replaced by its retry not counted)."""
    parents = conn.execute(
        text(
            "SELECT id, children_total, children_running, children_succeeded, children_failed, children_cancelled "
            "FROM jobs WHERE children_total > 0"
        )
    ).all()
    for parent_id, total, running, succeeded, failed, cancelled in parents:
        counted = dict(
            conn.execute(
                text(
                    "SELECT status, COUNT(*) FROM jobs AS child WHERE parent_id = :id AND NOT EXISTS "
                    "(SELECT 1 FROM jobs AS retry WHERE retry.retry_of = child.id) GROUP BY status"
                ),
                {"id": parent_id},
            ).all()
        )
        assert sum(counted.values()) == total, (parent_id, counted, total)
        assert (running, succeeded, failed, cancelled) == tuple(
            counted.get(status, 0) for status in ("running", "succeeded", "failed", "cancelled")
        ), (parent_id, counted)


TERMINAL_SQL = ", ".join(f"'{status}'" for status in sorted(TERMINAL))


def check_children(conn: Connection) -> None:
    """A finished parent has no live child; every child of an ended parent (a shard, a trial, a batch's job)
    ended exactly once, and before its parent last ended (its end is what moved the parent)."""
    live = conn.execute(
        text(
            f"SELECT parent.id, child.id, child.status FROM jobs AS parent JOIN jobs AS child "
            f"ON child.parent_id = parent.id WHERE parent.status IN ({TERMINAL_SQL}) "
            f"AND child.status NOT IN ({TERMINAL_SQL})"
        )
    ).all()
    assert live == [], ("a finished parent with a live child", live)
    parent_ends = dict(
        conn.execute(
            text(
                f"SELECT job_id, MAX(id) FROM job_events WHERE kind = 'state' AND to_status IN ({TERMINAL_SQL}) "
                f"AND job_id IN (SELECT id FROM jobs WHERE children_total > 0) GROUP BY job_id"
            )
        ).all()
    )
    ends = conn.execute(
        text(
            f"SELECT child.parent_id, child.id, COUNT(event.id), MAX(event.id) FROM jobs AS child "
            f"JOIN jobs AS parent ON parent.id = child.parent_id AND parent.status IN ({TERMINAL_SQL}) "
            f"LEFT JOIN job_events AS event ON event.job_id = child.id AND event.kind = 'state' "
            f"AND event.to_status IN ({TERMINAL_SQL}) GROUP BY child.parent_id, child.id"
        )
    ).all()
    for parent_id, child_id, count, last in ends:
        assert count == 1, (parent_id, child_id, f"ended {count} times")
        assert last < parent_ends[parent_id], (parent_id, child_id, "ended after its parent")


def check_invariants(admin_db: Database) -> None:
    """Every job in exactly one terminal state along a legal path; leases released; one version per job; every
    parent's totals its children's statuses, and its children ended once each, before it."""
    with admin_db.engine.connect() as conn:
        jobs = conn.execute(text("SELECT id, status, lease_token FROM jobs")).all()
        for job_id, status, lease in jobs:
            assert status in TERMINAL, (job_id, status)
            assert lease is None, (job_id, "lease still held")
            rows = conn.execute(
                text("SELECT from_status, to_status FROM job_events WHERE job_id = :id AND kind = 'state' ORDER BY id"),
                {"id": job_id},
            ).all()
            current = None
            for source, target in rows:
                assert source == current, (job_id, rows)
                assert (source, target) in LEGAL_TRANSITIONS, (job_id, rows)
                current = target
            assert current == status, (job_id, rows)
            # One lease at a time: a legal path never has two claims without a transition out of running between.
        check_parents(conn)
        check_children(conn)
        duplicates = conn.execute(
            text(
                "SELECT training_job_id FROM model_versions WHERE training_job_id IS NOT NULL "
                "GROUP BY training_job_id HAVING COUNT(*) > 1"
            )
        ).all()
        assert duplicates == []
