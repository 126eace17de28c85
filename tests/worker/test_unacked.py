"""Messages held unacknowledged by a consumer killed outright (real Redis, a real consumer process, SIGKILL):
the reaper puts back those of still-queued jobs once a worker is known gone, and only those."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import update

from db.database import Database
from db.jobs import NewJob
from db.migrate import upgrade
from db.models import Worker, utcnow
from db.session import session_scope
from db.workers import WorkerInfo
from tensorq.core.settings import Settings
from tests.conftest import RecordingPublisher, make_settings
from worker.celery_app import make_celery
from worker.publisher import CeleryPublisher
from worker.reaper import Reaper
from worker.unacked import UnackedMessages

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]

# Takes ``count`` messages from the job queues without acknowledging them, says their ids, then waits to be killed.
CONSUMER = """
import sys, time
from tensorq.core.settings import Settings
from worker.celery_app import make_celery
app = make_celery(Settings(broker_url=sys.argv[1], artifact_dir=sys.argv[2], queue_prefix=sys.argv[3]))
count = int(sys.argv[4])
taken = []
with app.connection_for_read() as conn:
    channel = conn.channel()
    channel.basic_qos(0, count, False)
    consumer = conn.Consumer(list(app.amqp.queues.values()), channel=channel, accept=["json"],
                             callbacks=[lambda body, message: taken.append(message.headers["id"])])
    with consumer:
        while len(taken) < count:
            conn.drain_events(timeout=10)
        print(" ".join(taken), flush=True)
        time.sleep(3600)
"""


@pytest.fixture
def stack(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[tuple[Settings, Database, Celery]]:
    """Settings on their own Redis (a short heartbeat, so that a message soon counts as not being run)."""
    settings = make_settings(
        tmp_path, database_url, broker_url=redis_url, heartbeat_s=0.2, worker_stale_s=1.0, queue_prefix="held"
    )
    upgrade(settings.database_url)
    db = Database(settings)
    app = make_celery(settings)
    yield settings, db, app
    app.close()
    db.dispose()


def _take_and_die(settings: Settings, count: int) -> list[str]:
    """A consumer process takes ``count`` messages unacknowledged and is killed with SIGKILL; the ids it took."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, settings.broker_url, str(settings.artifact_dir), settings.queue_prefix,
         str(count)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    taken = proc.stdout.readline().split()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(settings.heartbeat_s * 2)  # older than a heartbeat: a live worker would have claimed them by now
    return taken


def _seen(db: Database, name: str, last_seen: datetime) -> None:
    """A registered worker whose last heartbeat was at ``last_seen``."""
    db.workers.register(WorkerInfo(name=name, node="n@h", host="h", pid=1, queues=["train"], version="0"))
    with session_scope(db.factory) as session:
        session.execute(update(Worker).where(Worker.name == name).values(last_seen=last_seen))


def test_the_reaper_puts_back_the_unclaimed_messages_a_gone_worker_held(
    stack: tuple[Settings, Database, Celery],
) -> None:
    settings, db, app = stack
    tenant = db.keys.ensure_tenant("acme")
    publisher = CeleryPublisher(app)
    unclaimed, running, waiting = (db.jobs.submit(NewJob(tenant, "train", {}), publishing=True).job for _ in range(3))
    for job in (unclaimed, running, waiting):
        publisher.publish(job)
    assert _take_and_die(settings, 2) == [unclaimed.id, running.id]
    assert db.jobs.claim(running.id, "the-killed-worker") is not None  # its claim landed before the kill
    unacked = UnackedMessages(app)
    assert sorted(m.job_id for m in unacked.held_before(time.time())) == sorted([unclaimed.id, running.id])
    reaper = Reaper(settings, db, RecordingPublisher(), unacked)

    assert reaper.run_once().restored == []  # nobody is known gone: a live worker may hold them
    # The killed worker's last heartbeat came shortly before it took them; it is known gone worker_stale_s later.
    delivered = max(m.delivered_at for m in unacked.held_before(time.time()))
    _seen(db, "the-killed-worker", datetime.fromtimestamp(delivered - settings.heartbeat_s, UTC))
    _seen(db, "a-live-worker", utcnow())
    while time.time() < delivered - settings.heartbeat_s + settings.worker_stale_s + 0.1:
        time.sleep(0.1)
    report = reaper.run_once()
    assert report.restored == [unclaimed.id]
    assert report.republished == []
    assert [m.job_id for m in unacked.held_before(time.time())] == [running.id]  # its lease settles it
    assert publisher.queue_depth("train") == 2
    assert _take_and_die(settings, 2) == [unclaimed.id, waiting.id]  # back at the head of its queue
    assert db.workers.heartbeat("a-live-worker", None)
    assert reaper.run_once().restored == []  # the gone worker's row is forgotten: acted on once


def test_a_gone_worker_is_listed_until_forgotten_once(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url, worker_stale_s=5.0)
    upgrade(settings.database_url)
    db = Database(settings)
    try:
        _seen(db, "gone", utcnow() - timedelta(minutes=1))
        _seen(db, "back", utcnow() - timedelta(minutes=1))
        db.workers.register(WorkerInfo(name="live", node="n@h", host="h", pid=2, queues=["train"], version="0"))
        gone = {w.name: w for w in db.workers.gone()}
        assert sorted(gone) == ["back", "gone"]
        assert utcnow() - timedelta(minutes=2) < gone["gone"].last_seen < utcnow() - timedelta(seconds=50)
        assert sorted(w.name for w in db.workers.gone()) == sorted(gone)  # listing deletes nothing
        assert db.workers.heartbeat("back", None)  # it heartbeated since it was listed: its row stays
        assert db.workers.forget(gone["gone"])
        assert not db.workers.forget(gone["gone"])  # of many reapers, one deletes the row
        assert not db.workers.forget(gone["back"])
        assert db.workers.gone() == []
        assert [w.name for w in db.workers.live()] == ["back", "live"]
    finally:
        db.dispose()
