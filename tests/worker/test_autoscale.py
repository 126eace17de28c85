"""The autoscaler's decisions as pure functions, and its loop on a real database with a replica set we own."""

from __future__ import annotations

import threading

from prometheus_client import generate_latest

from db.backlog import backlog_by_type
from db.database import Database
from db.jobs import NewJob
from db.workers import WorkerInfo, claimer
from tensorq.core.errors import Unavailable
from worker.autoscale.loop import Autoscaler, next_wait, queue_loads
from worker.autoscale.metrics import AutoscaleMetrics
from worker.autoscale.policy import Policy, QueueLoad, ScaleState, decide, demand, desired_workers
from worker.autoscale.replicas import Replica

POLICY = Policy(min_workers=1, max_workers=4, jobs_per_worker=2, cooldown_s=60)
QUEUES = ("train", "predict", "explain")


def test_desired_workers_aims_at_jobs_per_worker_within_bounds() -> None:
    assert [desired_workers(jobs, POLICY) for jobs in (0, 1, 2, 3, 4, 5, 8, 9, 100)] == [1, 1, 1, 2, 2, 3, 4, 4, 4]
    floor_zero = Policy(min_workers=0, max_workers=3, jobs_per_worker=1, cooldown_s=0)
    assert desired_workers(0, floor_zero) == 0


def test_demand_counts_queued_and_running_on_served_queues_only() -> None:
    loads = [QueueLoad("train", 3, 1), QueueLoad("predict", 2, 0), QueueLoad("other", 50, 50)]
    assert demand(loads, QUEUES) == 6
    assert demand(loads, ("predict",)) == 2


def test_scale_up_is_immediate() -> None:
    decision = decide(1, 7, POLICY, ScaleState(), now=0.0)
    assert (decision.target, decision.changes) == (4, True)


def test_scale_down_waits_for_the_cooldown_without_a_break() -> None:
    state = ScaleState()
    decision = decide(4, 0, POLICY, state, now=100.0)
    assert decision.target == 4
    assert decision.state.surplus_since == 100.0
    decision = decide(4, 0, POLICY, decision.state, now=159.0)
    assert decision.target == 4
    decision = decide(4, 0, POLICY, decision.state, now=160.0)
    assert decision.target == 1
    assert decision.state == ScaleState()


def test_a_backlog_that_returns_resets_the_cooldown() -> None:
    first = decide(4, 0, POLICY, ScaleState(), now=0.0)
    back = decide(4, 8, POLICY, first.state, now=50.0)
    assert back.target == 4
    assert back.state.surplus_since is None
    again = decide(4, 0, POLICY, back.state, now=70.0)
    assert again.target == 4  # the clock started again at 70
    assert decide(4, 0, POLICY, again.state, now=129.0).target == 4
    assert decide(4, 0, POLICY, again.state, now=130.0).target == 1


def test_partial_surplus_scales_down_to_what_the_backlog_needs() -> None:
    state = decide(4, 3, POLICY, ScaleState(), now=0.0).state
    assert decide(4, 3, POLICY, state, now=60.0).target == 2


def test_counts_outside_the_bounds_come_back_at_once() -> None:
    assert decide(0, 0, POLICY, ScaleState(), now=0.0).target == 1
    assert decide(9, 100, POLICY, ScaleState(), now=0.0).target == 4


def test_policy_rejects_impossible_bounds() -> None:
    import pytest

    with pytest.raises(ValueError, match="min_workers"):
        Policy(min_workers=5, max_workers=2, jobs_per_worker=1, cooldown_s=0)


class FakeReplicas:
    """A replica set we own: replicas are numbers, each on host ``w<number>``; remembers what was stopped."""

    def __init__(self, running: int) -> None:
        self.running = [Replica(f"id{n}", f"w{n}", n) for n in range(1, running + 1)]
        self.stopped: list[str] = []
        self.broken = False

    def members(self) -> list[Replica]:
        if self.broken:
            raise ConnectionError("docker is away")
        return list(self.running)

    def start(self, count: int) -> None:
        first = max((r.number for r in self.running), default=0) + 1
        self.running += [Replica(f"id{n}", f"w{n}", n) for n in range(first, first + count)]

    def stop(self, replica: Replica) -> None:
        self.running.remove(replica)
        self.stopped.append(replica.host)


def _submit(db: Database, tenant: str, job_type: str, n: int) -> list[str]:
    tenant_id = db.keys.ensure_tenant(tenant)
    return [db.jobs.submit(NewJob(tenant_id, job_type, {"n": i})).job.id for i in range(n)]


def test_backlog_is_read_per_queue_from_sql(db: Database) -> None:
    train = _submit(db, "acme", "train", 3)
    _submit(db, "acme", "predict", 2)
    _submit(db, "acme", "import", 1)
    db.jobs.claim(train[0], "w1")
    loads = {load.queue: load for load in queue_loads(backlog_by_type(db.factory))}
    assert (loads["train"].queued, loads["train"].running) == (2, 1)
    # imports share the predict queue
    assert (loads["predict"].queued, loads["predict"].running) == (3, 0)
    assert loads["train"].oldest_queued_s >= 0.0
    assert "explain" not in loads


def _scaler(db: Database, replicas: FakeReplicas, now: list[float], **kwargs: object) -> Autoscaler:
    return Autoscaler(
        POLICY,
        QUEUES,
        lambda: queue_loads(backlog_by_type(db.factory)),
        replicas,
        db.drains,
        clock=lambda: now[0],
        **kwargs,  # type: ignore[arg-type]
    )


def test_loop_scales_up_then_down_after_cooldown_and_records_metrics(db: Database) -> None:
    now = [0.0]
    replicas = FakeReplicas(1)
    metrics = AutoscaleMetrics("worker-cpu", QUEUES)
    scaler = _scaler(db, replicas, now, metrics=metrics)
    ids = _submit(db, "acme", "train", 5)
    assert scaler.step().target == 3
    assert [r.host for r in replicas.running] == ["w1", "w2", "w3"]
    text = generate_latest(metrics.registry).decode()
    assert 'tensorq_queue_depth{queue="train"} 5.0' in text
    assert 'tensorq_queue_depth{queue="explain"} 0.0' in text
    assert 'tensorq_workers{service="worker-cpu"} 3.0' in text
    assert 'tensorq_autoscale_events_total{direction="up",service="worker-cpu"} 1.0' in text
    for job_id in ids:
        claim = db.jobs.claim(job_id, "w:1")
        db.jobs.finish(job_id, claim.lease_token, {})
    now[0] = 10.0
    assert scaler.step().target == 3  # cooling down
    now[0] = 70.0
    assert scaler.step().target == 1  # two marked to drain, nothing stopped in the step that marks them
    assert sorted(db.drains.marked("worker-cpu")) == ["w2", "w3"]
    assert replicas.stopped == []
    now[0] = 75.0
    scaler.step()
    assert sorted(replicas.stopped) == ["w2", "w3"]
    assert db.drains.marked("worker-cpu") == {}
    text = generate_latest(metrics.registry).decode()
    assert 'tensorq_workers{service="worker-cpu"} 1.0' in text
    assert 'tensorq_queue_depth{queue="train"} 0.0' in text
    assert 'tensorq_autoscale_stops_total{how="drained",service="worker-cpu"} 2.0' in text


def _run_on(db: Database, host: str, job_id: str) -> None:
    """A worker on ``host`` claims ``job_id`` and says so in its row."""
    db.workers.register(WorkerInfo(f"n@{host}:1", f"n@{host}", host, 1, list(QUEUES), "t"))
    db.workers.heartbeat(f"n@{host}:1", job_id)
    assert db.jobs.claim(job_id, claimer(host, 1)) is not None


def test_scale_down_removes_idle_workers_first_and_never_a_busy_one(db: Database) -> None:
    """Three replicas, the newest two busy: scaling to one removes the idle oldest and one busy, which drains."""
    now = [0.0]
    replicas = FakeReplicas(3)
    scaler = _scaler(db, replicas, now)
    ids = _submit(db, "acme", "train", 2)
    _run_on(db, "w2", ids[0])
    _run_on(db, "w3", ids[1])
    scaler.step()  # 2 running jobs need 1 worker: the cooldown starts
    now[0] = 61.0
    assert scaler.step().target == 1
    assert sorted(db.drains.marked("worker-cpu")) == ["w1", "w3"]  # the idle one, then the newest busy one
    now[0] = 63.0
    scaler.step()
    assert replicas.stopped == ["w1"]  # w3 still runs its job: it keeps draining
    # A worker on a draining host gives the messages it receives back instead of claiming them.
    assert db.drains.is_draining("w3")
    assert not db.drains.is_draining("w2")
    assert db.jobs.finish(ids[1], db_token(db, ids[1]), {})
    db.workers.heartbeat("n@w3:1", None)
    now[0] = 65.0
    scaler.step()
    assert replicas.stopped == ["w1", "w3"]
    assert [r.host for r in replicas.running] == ["w2"]
    assert _to_statuses(db, ids[1]) == ["queued", "running", "succeeded"]  # never handed back


def test_a_drain_longer_than_max_drain_s_ends_in_a_hand_back(db: Database) -> None:
    now = [0.0]
    replicas = FakeReplicas(2)
    metrics = AutoscaleMetrics("worker-cpu", QUEUES)
    scaler = _scaler(db, replicas, now, max_drain_s=30.0, metrics=metrics)
    [job] = _submit(db, "acme", "train", 1)
    _run_on(db, "w1", job)
    _run_on(db, "w2", _submit(db, "acme", "train", 1)[0])
    db.drains.mark(["w2"], "worker-cpu")
    scaler.step()
    now[0] = 29.0
    scaler.step()
    assert replicas.stopped == []
    now[0] = 31.0
    scaler.step()
    assert replicas.stopped == ["w2"]
    text = generate_latest(metrics.registry).decode()
    assert 'tensorq_autoscale_stops_total{how="handback",service="worker-cpu"} 1.0' in text


def test_a_failed_read_keeps_the_replicas_and_shows_in_the_metrics(db: Database) -> None:
    """Docker away, then the database away: nothing is stopped, not even with min_workers 0 and no backlog."""
    now = [0.0]
    replicas = FakeReplicas(2)
    metrics = AutoscaleMetrics("worker-cpu", QUEUES)
    policy = Policy(min_workers=0, max_workers=4, jobs_per_worker=2, cooldown_s=0)
    scaler = Autoscaler(policy, QUEUES, lambda: [], replicas, db.drains, clock=lambda: now[0], metrics=metrics)
    replicas.broken = True
    assert scaler.step() is None
    text = generate_latest(metrics.registry).decode()
    assert 'tensorq_autoscale_read_errors_total{error="ConnectionError",service="worker-cpu"} 1.0' in text
    assert 'tensorq_autoscale_reads_ok{service="worker-cpu"} 0.0' in text

    def no_database() -> list[QueueLoad]:
        raise Unavailable("database unavailable")

    replicas.broken = False
    scaler.read_backlog = no_database
    assert scaler.step() is None
    assert len(replicas.running) == 2
    assert db.drains.marked("worker-cpu") == {}


def test_next_wait_is_short_only_while_at_zero() -> None:
    at_zero = decide(0, 0, Policy(0, 4, 2, 0), ScaleState(), 0.0)
    starting = decide(0, 1, Policy(0, 4, 2, 0), ScaleState(), 0.0)
    assert next_wait(at_zero, 5.0, 0.5) == 0.5
    assert next_wait(at_zero, 5.0, None) == 5.0
    assert next_wait(at_zero, 0.2, 0.5) == 0.2
    assert next_wait(starting, 5.0, 0.5) == 5.0
    assert next_wait(None, 5.0, 0.5) == 5.0  # a failed read: no faster retries


def test_from_zero_a_submitted_job_starts_a_worker_at_the_zero_interval(db: Database) -> None:
    """min_workers 0 and nothing queued: no worker; a job then starts one at the next short step, long before
    the normal interval (60 s here) would."""
    replicas = FakeReplicas(0)
    policy = Policy(min_workers=0, max_workers=4, jobs_per_worker=2, cooldown_s=0)
    scaler = Autoscaler(policy, QUEUES, lambda: queue_loads(backlog_by_type(db.factory)), replicas, db.drains)
    stop = threading.Event()
    loop = threading.Thread(target=scaler.run, args=(60.0, stop, 0.05))
    loop.start()
    try:
        threading.Event().wait(0.3)
        assert replicas.running == []
        _submit(db, "acme", "train", 1)
        for _ in range(200):
            if replicas.running:
                break
            threading.Event().wait(0.05)
        assert [r.host for r in replicas.running] == ["w1"]
    finally:
        stop.set()
        loop.join(10)


def db_token(db: Database, job_id: str) -> str:
    """The lease token of a running job (read as its worker knows it)."""
    from sqlalchemy import select

    from db.models import Job

    with db.factory() as session:
        return session.scalars(select(Job.lease_token).where(Job.id == job_id)).one()


def _to_statuses(db: Database, job_id: str) -> list[str | None]:
    from sqlalchemy import select

    from db.models import JobEvent

    with db.factory() as session:
        query = select(JobEvent.to_status).where(JobEvent.job_id == job_id, JobEvent.kind != "progress")
        return list(session.scalars(query.order_by(JobEvent.id)))


def test_autoscaler_and_health_check_run_without_tensorflow() -> None:
    """They run in the API image, which has no TensorFlow."""
    import json
    import subprocess
    import sys

    code = (
        "import sys, json\nimport worker.autoscale.main, worker.healthcheck, worker.gpu_check\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(done.stdout.strip().splitlines()[-1])}
    assert not loaded & {"tensorflow", "keras"}


def test_gpu_workers_are_recognised_and_never_copied() -> None:
    from worker.autoscale.replicas import reserves_gpus

    gpu = {"HostConfig": {"DeviceRequests": [{"Driver": "nvidia", "DeviceIDs": ["0"], "Capabilities": [["gpu"]]}]}}
    assert reserves_gpus(gpu)
    assert not reserves_gpus({"HostConfig": {"DeviceRequests": None}})
    assert not reserves_gpus({"HostConfig": {}})
