"""Outage and load drills on real processes: a Postgres outage longer than the lease and the worker's write
retries, a burst of 500 predict jobs, a Redis outage with its AOF kept.

Like the drills of ``test_drills.py`` (whose cluster fixture and helpers they share), each ends with the
invariant check over the whole database: one terminal state per job along a legal path, no lease held, at most
one model version per training job.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sqlalchemy import text

from tests.reliability.harness import Cluster, wait_for
from tests.reliability.test_drills import SLOW_TRAIN, _report, _tiny_model
from worker.retry import budget_s

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _claims_by_job(cluster: Cluster) -> dict[str, int]:
    """How many times each job was claimed, from the state events (one query)."""
    with cluster.admin_db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT job_id, COUNT(*) FROM job_events WHERE kind = 'state' AND to_status = 'running' GROUP BY job_id"
            )
        ).all()
    return {job_id: count for job_id, count in rows}


def _statuses(cluster: Cluster) -> dict[str, str]:
    with cluster.admin_db.engine.connect() as conn:
        return {job_id: status for job_id, status in conn.execute(text("SELECT id, status FROM jobs")).all()}


def test_drill_a_postgres_outage_longer_than_the_lease_and_the_write_retries(make_cluster, record_property) -> None:
    started = time.monotonic()
    # 5 tries of the final write (7.5 s of waits) instead of 8 (31.5 s): the same path, in a shorter drill.
    cluster: Cluster = make_cluster(db_retry_attempts=5)
    cluster.start_worker()
    headers = {"Authorization": cluster.client._http.headers["Authorization"]}  # noqa: SLF001
    training = cluster.client.submit("train", {**SLOW_TRAIN, "epochs": 4})
    waiting = [
        cluster.client.submit("train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2}).id
        for _ in range(2)
    ]
    cluster.wait_epoch(training.id, 3)  # the last epoch and the final write fall inside the outage
    cluster.proxy.cut()
    cut = time.monotonic()
    # Longer than the lease (4 s) and the worker's write retries, counting the last epoch before the final write.
    outage_s = max(cluster.settings.lease_s, budget_s(cluster.settings.db_retry_attempts)) + 10.0
    answers: list[int] = []
    with httpx.Client(base_url=cluster.api.url, headers=headers, timeout=30) as http:
        while time.monotonic() - cut < outage_s:
            for response in (
                http.get(f"/v1/jobs/{training.id}"),
                http.get("/v1/jobs"),
                http.get(f"/v1/jobs/{waiting[0]}/events"),
                http.post("/v1/jobs", json={"type": "train", "spec": SLOW_TRAIN}),
            ):
                answers.append(response.status_code)
                assert response.status_code == 503, response.text
                assert int(response.headers["Retry-After"]) > 0, response.text
            ready = http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("unavailable")
            assert http.get("/healthz").status_code == 200
            time.sleep(2)
    cluster.proxy.restore()
    back = time.monotonic()
    with httpx.Client(base_url=cluster.api.url, headers=headers, timeout=30) as http:
        wait_for(lambda: http.get("/readyz").status_code == 200, timeout=30, what="ready again")
    ready_after = time.monotonic() - back
    for job_id in [training.id, *waiting]:
        done = cluster.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=180)
        assert done.status == "succeeded", done.error
    done = cluster.client.job(training.id)
    assert len(done.result["history"]["loss"]) == 4
    assert len(cluster.db.jobs.versions_of_job(training.id)) == 1
    # No epoch ran twice: a second attempt (its final write was lost) resumes from the last checkpoint.
    epochs = [e.data["epoch"] for e in cluster.client.events(training.id) if e.kind == "progress"]
    assert sorted(set(epochs)) == epochs, epochs
    claims_of = _claims_by_job(cluster)
    assert claims_of[training.id] == 2  # its final write outlasted the retries: the reaper re-queued it
    assert all(claims_of[job_id] == 1 for job_id in waiting), claims_of
    assert set(_statuses(cluster)) == {training.id, *waiting}  # the refused submissions left no row
    _report(
        record_property,
        "postgres_long_outage",
        drill=time.monotonic() - started,
        outage=back - cut,
        back_to_ready=ready_after,
        back_to_done=time.monotonic() - back,
    )
    print(
        f"[drill] postgres_long_outage: {len(answers)} API calls during the outage, all 503; "
        f"training claimed {claims_of[training.id]}x, epochs reported {epochs}"
    )


def test_drill_a_burst_of_500_predict_jobs_from_8_threads(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster()
    cluster.start_worker()
    model = _tiny_model(cluster)
    headers = {"Authorization": cluster.client._http.headers["Authorization"]}  # noqa: SLF001
    body = {"type": "predict", "spec": {"model": model, "inputs": [[5.1, 3.5, 1.4, 0.2]]}}
    statuses: list[int] = []
    accepted: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def submit(count: int) -> None:
        with httpx.Client(base_url=cluster.api.url, headers=headers, timeout=60) as http:
            barrier.wait()
            for _ in range(count):
                response = http.post("/v1/jobs", json=body)
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 202:
                        accepted.append(response.json()["id"])

    burst = time.monotonic()
    threads = [threading.Thread(target=submit, args=(63 if i < 4 else 62,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    submitted_in = time.monotonic() - burst
    assert len(statuses) == 500
    assert 500 not in statuses
    assert set(statuses) <= {202, 429, 503}, sorted(set(statuses))
    wait_for(
        lambda: all(s in ("succeeded", "failed", "cancelled") for s in _statuses(cluster).values()),
        timeout=300,
        what="the burst done",
        interval=1.0,
    )
    done_in = time.monotonic() - burst
    final = _statuses(cluster)
    assert all(final[job_id] == "succeeded" for job_id in accepted)
    claims_of = _claims_by_job(cluster)
    assert all(claims_of[job_id] == 1 for job_id in accepted)
    _report(
        record_property,
        "burst_500",
        drill=time.monotonic() - started,
        submit_500=submitted_in,
        burst_to_all_done=done_in,
    )
    print(f"[drill] burst_500: {len(accepted)} accepted of 500 ({statuses.count(202)} x 202), each claimed once")


def test_drill_a_redis_outage_with_its_aof_kept(make_cluster, record_property) -> None:
    started = time.monotonic()
    cluster: Cluster = make_cluster(redis_appendonly=True)
    worker = cluster.start_worker()
    model = _tiny_model(cluster)
    headers = {"Authorization": cluster.client._http.headers["Authorization"]}  # noqa: SLF001
    body = {"type": "predict", "spec": {"model": model, "inputs": [[5.1, 3.5, 1.4, 0.2]]}}
    busy = cluster.client.submit("train", {**SLOW_TRAIN, "epochs": 3})
    cluster.wait_status(busy.id, {"running"})
    queued = [cluster.client.submit(body["type"], body["spec"]).id for _ in range(5)]
    wait_for(lambda: cluster.redis.queued_messages() >= 5, timeout=10, what="messages queued")
    time.sleep(1.5)  # appendfsync everysec
    cluster.redis.stop()  # SIGTERM: Redis writes its AOF out and exits
    stopped = time.monotonic()
    accepted, statuses = [busy.id, *queued], []
    with httpx.Client(base_url=cluster.api.url, headers=headers, timeout=30) as http:
        for _ in range(6):
            response = http.post("/v1/jobs", json=body)
            statuses.append(response.status_code)
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            else:
                assert response.status_code == 503, response.text
                assert int(response.headers["Retry-After"]) > 0, response.text
        reads = [http.get(f"/v1/jobs/{job_id}").status_code for job_id in accepted]
        assert reads == [200] * len(accepted)
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"].startswith("unavailable")
    assert 500 not in statuses
    assert 503 in statuses
    time.sleep(3)
    cluster.redis.start()  # the same port and folder: the AOF is read back
    restarted = time.monotonic()
    survived = cluster.redis.queued_messages()
    assert survived >= len(queued)
    for job_id in accepted:
        done = cluster.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=120)
        assert done.status == "succeeded", done.error
    time.sleep(3)  # let every duplicate message, if any were published, reach the worker
    claims_of = _claims_by_job(cluster)
    assert all(claims_of[job_id] == 1 for job_id in accepted), claims_of
    # The survivors' messages were delivered from the AOF. The reaper may still have published some of them again
    # (a worker that reconnects takes a message before it runs, and the queue then holds fewer messages than
    # queued jobs): each such duplicate found its job claimed and was skipped.
    log = worker.log_path.read_text().splitlines()
    republished = {j for line in log if "reaper:" in line for j in queued if j in line}
    skipped = sum(1 for line in log if "not claimable" in line and any(j in line for j in queued))
    _report(
        record_property,
        "redis_aof_outage",
        drill=time.monotonic() - started,
        outage=restarted - stopped,
        back_to_done=time.monotonic() - restarted,
    )
    print(
        f"[drill] redis_aof_outage: {survived} messages survived the restart; submissions during it {statuses}; "
        f"{len(republished)} of {len(queued)} survivors re-published by the reaper, {skipped} duplicate deliveries "
        "skipped by the claim"
    )
