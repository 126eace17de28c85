"""The compose stack for real: images built, the stack started on a CPU host, jobs through the published port,
and worker-cpu replicas that follow the backlog (min -> max -> min) without losing or repeating a job."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.deploy.stack import Stack, free_port

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(2400)]

MIN_WORKERS, MAX_WORKERS, COOLDOWN_S = 1, 3, 15
STACK_SETTINGS = {
    "TENSORQ_AUTOSCALE_MIN_WORKERS": str(MIN_WORKERS),
    "TENSORQ_AUTOSCALE_MAX_WORKERS": str(MAX_WORKERS),
    "TENSORQ_AUTOSCALE_JOBS_PER_WORKER": "2",
    "TENSORQ_AUTOSCALE_COOLDOWN_S": str(COOLDOWN_S),
    "TENSORQ_AUTOSCALE_INTERVAL_S": "2",
    "TENSORQ_AUTOSCALE_MAX_DRAIN_S": "900",
    "TENSORQ_API_WORKERS": "1",
    "TENSORQ_FLOWER_PASSWORD": "flower-secret",
}
# Several seconds each on one CPU worker: enough to keep three workers busy.
SHORT_TRAIN = {"architecture": "mlp", "dataset": "builtin:digits", "epochs": 12, "params": {"hidden": [128, 64]}}
# Submitted last and far longer: when only these two run, one worker suffices, and once the cooldown has
# passed the autoscaler removes two of the three workers while these two jobs run on two of them: it removes
# the idle one at once and drains a busy one (it takes no new job and is stopped when its job ends), so no job
# is handed back. The jobs outlast the short ones by more than the cooldown (150 epochs: about 40 s).
LONG_TRAIN = {**SHORT_TRAIN, "epochs": 150}
BACKLOG = [SHORT_TRAIN] * 6 + [LONG_TRAIN] * 2


def _until(predicate, timeout_s: float, what: str, every_s: float = 1.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_job(client: httpx.Client, job_id: str, timeout_s: float = 600) -> dict:
    def finished() -> dict | None:
        job = client.get(f"/v1/jobs/{job_id}", params={"wait": 10}, timeout=20).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return _until(finished, timeout_s, f"job {job_id}", every_s=0)


@pytest.fixture(scope="module")
def started(stack: Stack) -> dict:
    """Build, start, create a key, and submit the first job; records the figures on the way."""
    stack.timed("build_s", "build")
    stack.figures["image_sizes"] = stack.image_sizes()
    up_at = time.monotonic()
    stack.compose("up", "-d")
    key = stack.compose("run", "--rm", "-q", "migrate", "tensorq", "keys", "create", "--tenant", "acme").stdout
    key = key.strip().splitlines()[-1]
    assert key.startswith("tq_"), key
    _until(lambda: _ready(stack.url), 300, "the API's /readyz on the published port")
    client = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 3, "seed": 1, "model_name": "iris"}
    answer = client.post("/v1/jobs", json={"type": "train", "spec": spec})
    assert answer.status_code == 202, answer.text
    stack.figures["up_to_first_job_accepted_s"] = round(time.monotonic() - up_at, 1)
    return {"client": client, "first": answer.json()}


def test_a_small_model_trains_through_the_published_port(stack: Stack, started: dict) -> None:
    client: httpx.Client = started["client"]
    job = _wait_job(client, started["first"]["id"])
    assert job["status"] == "succeeded", (job["error"], stack.logs("worker-cpu"))
    model = client.get(f"/v1/models/{job['result']['model_id']}").json()
    assert [v["training_job_id"] for v in model["versions"]] == [job["id"]]
    download = client.get(f"/v1/models/{model['id']}/download")
    assert download.status_code == 200
    assert len(download.content) > 1000


def test_workers_follow_the_backlog_and_no_job_is_lost_or_repeated(stack: Stack, started: dict) -> None:
    client: httpx.Client = started["client"]
    assert stack.replicas("worker-cpu") == MIN_WORKERS
    submitted_at = time.monotonic()
    timeline: list[tuple[float, int]] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            timeline.append((round(time.monotonic() - submitted_at, 1), stack.replicas("worker-cpu")))
            sampling.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ids = []
    for seed, spec in enumerate(BACKLOG):
        answer = client.post("/v1/jobs", json={"type": "train", "spec": {**spec, "seed": seed}})
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    try:
        _until(lambda: any(n == MAX_WORKERS for _t, n in timeline), 120, f"{MAX_WORKERS} worker-cpu replicas")
        jobs = [_wait_job(client, job_id, timeout_s=1200) for job_id in ids]
        stack.figures["backlog_s"] = round(time.monotonic() - submitted_at, 1)
        assert [j["status"] for j in jobs] == ["succeeded"] * len(BACKLOG), [j["error"] for j in jobs]
        _until(lambda: stack.replicas("worker-cpu") == MIN_WORKERS, COOLDOWN_S + 180, f"{MIN_WORKERS} replica")
    finally:
        sampling.set()
        sampler.join()
    # The wait above saw MIN before the sampler's next tick may have: record that last state too.
    timeline.append((round(time.monotonic() - submitted_at, 1), stack.replicas("worker-cpu")))
    at_max = next(t for t, n in timeline if n == MAX_WORKERS)
    stack.figures["scale_up_s"] = at_max  # from the first submission to MAX replicas running
    stack.figures["back_to_min_s"] = next(t for t, n in timeline if t > at_max and n == MIN_WORKERS)
    stack.figures["replica_timeline"] = [
        (t, n) for i, (t, n) in enumerate(timeline) if i == 0 or timeline[i - 1][1] != n
    ]

    hand_backs = 0
    for job in jobs:
        events = client.get(f"/v1/jobs/{job['id']}/events").json()["events"]
        claims = sum(1 for e in events if e["to_status"] == "running")
        returned = sum(1 for e in events if e["from_status"] == "running" and e["to_status"] == "queued")
        finished = [e for e in events if e["to_status"] == "succeeded"]
        assert claims == 1 + returned, events
        assert len(finished) == 1, events
        hand_backs += returned
    stack.figures["hand_backs"] = hand_backs
    # The scale-down had an idle worker to remove and drained the busy one: no job was interrupted.
    assert hand_backs == 0, stack.logs("autoscaler")
    assert "still busy after" not in stack.logs("autoscaler")

    # One model version per training job, none twice.
    versions = [
        v["training_job_id"]
        for model in client.get("/v1/models").json()["models"]
        for v in client.get(f"/v1/models/{model['id']}").json()["versions"]
    ]
    assert sorted(v for v in versions if v in ids) == sorted(ids)

    log = stack.logs("autoscaler")
    assert f"-> {MAX_WORKERS} workers" in log, log
    assert f"-> {MIN_WORKERS} workers" in log, log


def test_the_autoscaler_serves_queue_metrics(stack: Stack, started: dict) -> None:
    code = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9100/metrics').read().decode())"
    workers_at_min = f'tensorq_workers{{service="worker-cpu"}} {float(MIN_WORKERS)}'

    def scraped() -> str | None:
        text = stack.compose("exec", "-T", "autoscaler", "python3", "-c", code).stdout
        return text if workers_at_min in text else None

    # The gauge follows the replicas at the autoscaler's next step after the scale-down.
    text = _until(scraped, 60, f"the autoscaler's metrics to show {workers_at_min}", every_s=2)
    assert 'tensorq_queue_depth{queue="train"} 0.0' in text
    assert 'tensorq_oldest_queued_seconds{queue="predict"}' in text
    assert 'tensorq_autoscale_events_total{direction="up",service="worker-cpu"}' in text


def test_flower_under_the_monitoring_profile_needs_its_password_and_sees_the_workers(
    stack: Stack, started: dict
) -> None:
    port = free_port()
    stack.env["TENSORQ_FLOWER_PORT"] = str(port)
    stack.compose("--profile", "monitoring", "up", "-d", "flower")
    try:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(url, timeout=3).status_code == 401
            except httpx.HTTPError:
                return False

        _until(answers, 120, "Flower behind basic auth")
        assert httpx.get(f"{url}/api/workers", auth=("admin", "wrong"), timeout=10).status_code == 401

        def workers() -> dict:
            answer = httpx.get(
                f"{url}/api/workers", params={"refresh": "1"}, auth=("admin", "flower-secret"), timeout=30
            )
            assert answer.status_code == 200, answer.text
            return {name: info for name, info in answer.json().items() if name.startswith("tensorq-cpu")}

        assert _until(workers, 90, "Flower listing the CPU worker", every_s=3)
    finally:
        stack.compose("--profile", "monitoring", "rm", "-sf", "flower", check=False)


def test_from_zero_workers_a_submitted_job_starts_one(stack: Stack, started: dict) -> None:
    """Scale to zero (issue 23): the autoscaler, restarted with min 0, stops the last worker once it idled past
    the cooldown; a job submitted then starts compose's worker container again. Its submit -> running and
    submit -> done are this host's cold start through Docker (recorded in the figures)."""
    client: httpx.Client = started["client"]
    first = _wait_job(client, started["first"]["id"])
    stack.env["TENSORQ_AUTOSCALE_MIN_WORKERS"] = "0"
    stack.compose("up", "-d", "--no-deps", "autoscaler")
    _until(lambda: stack.replicas("worker-cpu") == 0, COOLDOWN_S + 180, "no worker-cpu replica")
    assert "-> 0 workers" in stack.logs("autoscaler")

    submitted_at = time.monotonic()
    rows = [[5.1, 3.5, 1.4, 0.2]]  # one iris flower: the first job trained on builtin:iris
    answer = client.post(
        "/v1/jobs", json={"type": "predict", "spec": {"model": first["result"]["model_id"], "inputs": rows}}
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    running = _until(
        lambda: client.get(f"/v1/jobs/{job_id}", params={"wait": 5}).json()["status"] != "queued",
        300,
        "the job to leave the queue",
    )
    stack.figures["from_zero_running_s"] = round(time.monotonic() - submitted_at, 1)
    job = _wait_job(client, job_id)
    stack.figures["from_zero_done_s"] = round(time.monotonic() - submitted_at, 1)
    assert running
    assert job["status"] == "succeeded", (job["error"], stack.logs("worker-cpu", "autoscaler"))
    assert job["result"]["rows"] == 1
    assert stack.replicas("worker-cpu") == 1


def test_figures_are_recorded(stack: Stack, started: dict) -> None:
    path = stack.save_figures()
    print(f"deploy figures ({path}): {stack.figures}")
    assert {"build_s", "up_to_first_job_accepted_s"} <= set(stack.figures)
