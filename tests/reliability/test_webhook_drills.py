"""Webhook drills on real processes: one tenant's hostile receivers against another tenant's notification,
sent by a real worker's sender.

The hostile tenant (``acme``) gets a receiver that answers 200 and then drips one byte every 3 s, then 20
receivers that never answer, then 40 outbox rows poisoned with a CR/LF callback URL (written straight into the
outbox, past the API's check), then a receiver that answers with a 400 MiB body. During each, the other tenant
(``globex``) has a job end and the drill measures how long its notification takes to arrive; for the last, it
measures the worker's pool child's memory. Jobs end by a cancel while queued (the worker serves no train queue),
so no TensorFlow work stretches the figures. The invariant check of the cluster fixture runs afterwards."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from db.models import utcnow
from db.webhooks import enqueue
from tensorq.client import TensorQClient
from tests.reliability.harness import Cluster, wait_for
from tests.reliability.test_drills import _report
from tests.webhook_receivers import TestReceiver
from worker.drain import child_pids

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
SPEC = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1}
WAIT_S = 120.0  # how long a notification is waited for (the figure is reported as over it)
PROMPT_S = 10.0  # the other tenant's delay allowed: the 2 s outbox read, on a loaded machine


def _notify(client: TensorQClient, url: str) -> str:
    """A job of ``client``'s tenant that ends at once (cancelled while queued), notifying ``url``."""
    job = client.submit("train", SPEC, callback_url=url)
    client.cancel(job.id)
    return job.id


def _delay(client: TensorQClient, receiver: TestReceiver) -> float:
    """Seconds from a job's end to its notification's arrival at ``receiver`` (WAIT_S + 1 when it never did)."""
    job_id = _notify(client, receiver.url)
    ended = time.monotonic()
    while (arrived := receiver.arrived(job_id)) is None:
        if time.monotonic() - ended > WAIT_S:
            return WAIT_S + 1
        time.sleep(0.05)
    return arrived - ended


def _settle(cluster: Cluster, tenant_id: str, receivers: list[TestReceiver]) -> None:
    """End a scenario: stop its receivers and give up the tenant's pending deliveries."""
    for receiver in receivers:
        receiver.stop()
    with cluster.admin_db.engine.begin() as conn:
        conn.execute(
            text("UPDATE webhook_deliveries SET status = 'failed' WHERE tenant_id = :t AND status = 'pending'"),
            {"t": tenant_id},
        )


def _memory_mib(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MiB of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def test_drill_hostile_receivers_do_not_delay_another_tenants_notification(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster(webhook_allowed_hosts=["127.0.0.1"])
    worker = cluster.start_worker(queues="explain")  # train jobs stay queued until cancelled
    hostile = cluster.client
    other = TensorQClient(cluster.api.url, cluster.admin_db.keys.create("globex"))
    hostile.rotate_webhook_secret()
    other.rotate_webhook_secret()
    good = TestReceiver("ok")
    figures: dict[str, float] = {}
    try:
        # The pool child starts its sender after TensorFlow loaded: the first notification waits for it.
        assert _delay(other, good) < WAIT_S
        figures["baseline"] = _delay(other, good)

        drip = TestReceiver("drip_body", drip_s=3.0)
        tenant = cluster.admin_db.jobs.get_any(_notify(hostile, drip.url)).tenant_id
        assert drip.contacted.wait(30)
        figures["drip"] = _delay(other, good)
        _settle(cluster, tenant, [drip])

        hanging = [TestReceiver("hang") for _ in range(20)]
        for receiver in hanging:
            _notify(hostile, receiver.url)
        assert hanging[0].contacted.wait(30)
        figures["hanging_20"] = _delay(other, good)
        _settle(cluster, tenant, hanging)

        record = cluster.admin_db.jobs.get_any(_notify(hostile, good.url + "/cancelled"))
        poisoned = replace(record, callback_url=good.url + "\r\nX: y")
        with cluster.admin_db.engine.begin() as conn:
            for _ in range(40):
                enqueue(conn, poisoned, utcnow())
        figures["poisoned_40"] = _delay(other, good)
        _settle(cluster, tenant, [])

        (child,) = child_pids(worker.proc.pid if worker.proc else None)
        rss_before, peak_before = _memory_mib(child)
        huge = TestReceiver("huge", huge_bytes=400 << 20)
        huge_job = _notify(hostile, huge.url)
        assert huge.contacted.wait(30)
        wait_for(
            lambda: all(d.status != "pending" or d.attempts > 1 for d in hostile.webhook_deliveries(huge_job)),
            timeout=WAIT_S,
            what="the huge answer's delivery attempted",
        )
        rss_after, peak_after = _memory_mib(child)
        _settle(cluster, tenant, [huge])
    finally:
        good.stop()
        other.close()
    _report(record_property, "webhooks", drill=time.monotonic() - started, **figures)
    print(
        f"[drill] webhooks: pool child RSS {rss_before:.0f} -> {rss_after:.0f} MiB, "
        f"peak {peak_before:.0f} -> {peak_after:.0f} MiB, around a 400 MiB answer"
    )
    for name, delay in figures.items():
        assert delay < PROMPT_S, f"{name}: the other tenant's notification took {delay:.1f} s"
    assert peak_after - peak_before < 100, "the worker read the huge answer"
    assert rss_after - rss_before < 100
