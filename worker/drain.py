"""Graceful shutdown: the worker's parent asks its pool children to hand their jobs back.

On SIGTERM Celery starts a warm shutdown in the parent and stops consuming; the parent then sends
SIGUSR2 to each pool child, whose running job stops at its next batch boundary (the last epoch's
checkpoint is kept) and is handed back to the queue without counting the attempt.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
DRAIN_SIGNAL = signal.SIGUSR2
DRAINING = threading.Event()


def install_drain_handler() -> None:
    """In a pool child: set ``DRAINING`` when the parent asks."""
    signal.signal(DRAIN_SIGNAL, lambda _sig, _frame: DRAINING.set())


def child_pids(pid: int | None = None) -> list[int]:
    """The direct children of ``pid`` (default this process), read from /proc."""
    pid = pid or os.getpid()
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def drain_children() -> None:
    """In the parent: ask every pool child to hand its job back."""
    for pid in child_pids():
        try:
            os.kill(pid, DRAIN_SIGNAL)
            log.info("asked pool child %d to hand its job back", pid)
        except ProcessLookupError:
            pass


def stop_consuming(app: Any, node: str | None) -> None:
    """Ask worker ``node`` (its parent, through Celery's remote control) to stop consuming every job queue: its
    host drains, so it takes no further message; the autoscaler stops it once its job has ended."""
    if not node:
        return
    for queue in app.amqp.queues:
        try:
            app.control.cancel_consumer(queue, destination=[node])
        except Exception:  # noqa: BLE001 - the broker is away: the runner keeps giving messages back
            log.warning("could not stop consuming %s on %s", queue, node, exc_info=True)
    log.info("worker %s drains: stopped consuming its queues", node)


def drain_host(settings: Any, host: str, wait_s: float, every_s: float = 1.0) -> bool:
    """Mark ``host`` to drain (its workers take no new job) and wait until nothing runs there, at most
    ``wait_s``; True when it ran nothing in time (a Kubernetes preStop hook: the SIGTERM after it has no job
    to hand back)."""
    import time

    from db.drains import Drains
    from db.session import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    drains = Drains(make_session_factory(engine))
    try:
        drains.mark([host], settings.autoscale_service)
        deadline = time.monotonic() + wait_s
        while host in drains.busy_hosts():
            if time.monotonic() >= deadline:
                log.warning("%s still runs a job after %.0fs of drain; it is handed back", host, wait_s)
                return False
            time.sleep(every_s)
        return True
    finally:
        engine.dispose()
