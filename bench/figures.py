"""One function per figure: each runs the TensorQ side and its baseline in the same run and returns measurements."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import baselines
from bench.agent import agent_time
from bench.batch import batch_throughput
from bench.batching import batching, client_rate
from bench.context import Context
from bench.explain_batching import explain_batching
from bench.graphs import sharded_predict, tuning
from bench.grown import grown_database
from bench.jobs import Run, median_parts, run_job
from bench.measure import CpuMeter, concurrent_rate, percentile, samples
from bench.services import wait_until
from bench.specs import Measurement
from bench.speech import speech_train
from bench.streaming import streaming_train
from bench.versus_peer import versus_peer
from bench.waits import concurrent_waits
from tensorq.client import TensorQClient

MiB = 1024 * 1024
MS = 1e3


def _job_caller(ctx: Context, job_type: str, spec: dict, opened: list[TensorQClient]) -> Callable[[], object]:
    """A new client (remembered in ``opened``) and a call that runs one job with it."""
    client = ctx.client()
    opened.append(client)
    return lambda: run_job(client, job_type, spec)


def _run_measured(ctx: Context, client: TensorQClient, job_type: str, spec: dict, timeout: float = 600.0) -> Run:
    """Run a job; its Run's ``worker_cpu_s`` is the CPU seconds the worker's pool child spent meanwhile."""
    before = ctx.stack.worker.child_cpu_seconds()
    done = run_job(client, job_type, spec, timeout=timeout)
    done.worker_cpu_s = ctx.stack.worker.child_cpu_seconds() - before
    return done


def e2e_latency(ctx: Context, run: int) -> list[Measurement]:
    """Tiny predict from submit until the client sees it succeeded (as ``TensorQClient.run``: one ``POST ?wait=``;
    then with a POST and ``?wait=`` GETs), against raw Celery ``delay().get()``."""
    sizes = ctx.sizes
    tiny = ctx.tiny_spec()
    with ctx.client() as client:
        for _ in range(sizes.latency_warmup):
            run_job(client, "predict", tiny)
        runs = [run_job(client, "predict", tiny) for _ in range(sizes.latency_samples)]
        two = [run_job(client, "predict", tiny, one_request=False) for _ in range(sizes.latency_samples)]
        each = [
            run_job(client, "predict", tiny, one_request=False, until_finished=False)
            for _ in range(sizes.latency_samples)
        ]
    noop = ctx.raw_noop()
    raw = samples(lambda: noop.delay().get(timeout=30), sizes.latency_samples, warmup=sizes.latency_warmup)
    walls = [r.wall_s for r in runs]
    ctx.measured.setdefault(run, {}).update(
        {"latency_p50": percentile(walls, 50), "latency_p99": percentile(walls, 99)}
    )
    details = {**median_parts(runs), "samples": float(len(runs))}
    two_details = {**median_parts(two), "samples": float(len(two))}
    each_details = {**median_parts(each), "samples": float(len(each))}
    return [
        Measurement("e2e_latency_p50", percentile(walls, 50) * MS, percentile(raw, 50) * MS, details),
        Measurement("e2e_latency_p99", percentile(walls, 99) * MS, percentile(raw, 99) * MS, details),
        Measurement(
            "e2e_latency_two_requests_p50",
            percentile([r.wall_s for r in two], 50) * MS,
            percentile(raw, 50) * MS,
            two_details,
        ),
        Measurement(
            "e2e_latency_each_change_p50",
            percentile([r.wall_s for r in each], 50) * MS,
            percentile(raw, 50) * MS,
            each_details,
        ),
    ]


def throughput(ctx: Context, run: int) -> list[Measurement]:
    """Tiny predict jobs per second with several client threads, against raw Celery no-op tasks per second.

    The details give the CPU milliseconds per job of each process tree (API, worker, Redis, the bench's
    client threads) on both sides: on a small machine the rate is the cores divided by their sum.
    """
    sizes = ctx.sizes
    rate, ours, per_claim = client_rate(ctx)
    noop = ctx.raw_noop()
    pids = ctx.stack.pids
    with CpuMeter({name: pids[name] for name in ("raw_worker", "redis")}) as raw:
        raw_rate = concurrent_rate(
            lambda: lambda: noop.delay().get(timeout=60), sizes.clients, sizes.raw_throughput_tasks
        )
    ctx.measured.setdefault(run, {}).update({"throughput": rate, "raw_throughput": raw_rate})
    details = {"clients": float(sizes.clients), "jobs_per_claim": per_claim}
    details.update({f"cpu_ms_per_job_{name}": MS * s / sizes.throughput_jobs for name, s in ours.used.items()})
    details["cpu_ms_per_job_total"] = MS * sum(ours.used.values()) / sizes.throughput_jobs
    details.update({f"raw_cpu_ms_per_task_{name}": MS * s / sizes.raw_throughput_tasks for name, s in raw.used.items()})
    details["raw_cpu_ms_per_task_total"] = MS * sum(raw.used.values()) / sizes.raw_throughput_tasks
    return [Measurement("throughput", rate, raw_rate, details)]


def train_time(ctx: Context, run: int) -> list[Measurement]:
    """A CNN ``train`` job on the uploaded images (claim to succeeded) against the same ``model.fit`` in-process."""
    sizes = ctx.sizes
    seed = 100 + run
    spec = {
        "architecture": "cnn",
        "dataset": ctx.train_dataset,
        "epochs": sizes.train_epochs,
        "batch_size": sizes.batch_size,
        "validation_split": sizes.validation_split,
        "seed": seed,
        "model_name": "bench-cnn",
    }
    with ctx.client() as client:
        done = _run_measured(ctx, client, "train", spec, timeout=7200)
    ctx.cnn_model = ctx.cnn_model or done.job.result["model_id"]
    plain = baselines.train(
        ctx.train_x,
        ctx.train_y,
        epochs=sizes.train_epochs,
        batch_size=sizes.batch_size,
        validation_split=sizes.validation_split,
        seed=seed,
    )
    details = {
        **median_parts([done]),
        "baseline_fit_s": plain["fit_s"],
        "baseline_build_s": plain["build_s"],
        "val_accuracy": float(done.job.result["metrics"].get("val_accuracy", float("nan"))),
        "baseline_val_accuracy": plain["val_accuracy"],
    }
    return [
        Measurement("train_time", done.job_s, plain["total_s"], details),
        Measurement("train_cpu", done.worker_cpu_s, plain["cpu_s"]),
    ]


def predict_time(ctx: Context, run: int) -> list[Measurement]:
    """A ``predict`` job on the uploaded rows with the model cached, against ``ml.inference.predict`` in-process."""
    ctx.ensure_cnn()
    spec = {"model": ctx.cnn_model, "dataset": ctx.predict_dataset}
    with ctx.client() as client:
        if "predict" not in ctx.warmed:
            run_job(client, "predict", spec)
            ctx.warmed.add("predict")
        done = _run_measured(ctx, client, "predict", spec)
    model = baselines.load(ctx.cnn_path())
    baseline = baselines.predict(model, ctx.predict_x)
    details = {"rows": float(len(ctx.predict_x)), **_predict_parts(ctx, model)}
    return [
        Measurement("predict_time", done.job_s, baseline.wall_s, details),
        Measurement("predict_cpu", done.worker_cpu_s, baseline.cpu_s),
    ]


def _predict_parts(ctx: Context, model: Any) -> dict[str, float]:
    """In-process timings of the other steps of a predict job: reading the .npz, checking inputs, the CSV."""
    from ml.datasets import load_npz
    from ml.inference import coerce_inputs
    from ml.inference import predict as infer

    start = time.perf_counter()
    data = load_npz(ctx.predict_path)
    loaded = time.perf_counter()
    x = coerce_inputs(model, data.x)
    parts = {"npz_load_s": loaded - start, "coerce_s": time.perf_counter() - loaded}
    probabilities = infer(model, x)
    try:
        from worker.handlers import _write_predictions
    except ImportError:
        return parts
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        _write_predictions(Path(folder) / "p.csv", probabilities)
        parts["csv_write_s"] = time.perf_counter() - start
    return parts


def explain_time(ctx: Context, run: int) -> list[Measurement]:
    """An ``integrated_gradients`` explain job against the same call in-process, and against raw tape passes."""
    ctx.ensure_cnn()
    sizes = ctx.sizes
    x = ctx.predict_x[: sizes.explain_images]
    spec = {"model": ctx.cnn_model, "inputs": x.tolist(), "method": "integrated_gradients"}
    with ctx.client() as client:
        if "explain" not in ctx.warmed:  # warm at the measured shapes, like the baseline
            run_job(client, "explain", {**spec, "steps": sizes.explain_steps})
            ctx.warmed.add("explain")
        done = _run_measured(ctx, client, "explain", {**spec, "steps": sizes.explain_steps})
    model = baselines.load(ctx.cnn_path())
    ig = baselines.integrated_gradients(model, x, sizes.explain_steps)
    tape = baselines.tape_passes(model, x, sizes.explain_steps)
    details = {
        "images": float(len(x)),
        "steps": float(sizes.explain_steps),
        "heatmaps_s": baselines.heatmaps(x, len(x)),
        "result_json_bytes": float(len(json.dumps(done.job.result))),
        "tape_s": tape.wall_s,
        "tape_cpu_s": tape.cpu_s,
    }
    return [
        Measurement("explain_time", done.job_s, ig.wall_s, details),
        Measurement("explain_vs_tape", done.job_s, tape.wall_s),
        Measurement("explain_cpu", done.worker_cpu_s, ig.cpu_s),
    ]


def worker_memory(ctx: Context, run: int) -> list[Measurement]:
    """VmRSS of the worker's pool child after all predict jobs against after the first ten."""
    ctx.ensure_cnn()
    sizes = ctx.sizes
    worker = ctx.stack.worker
    spec = {"model": ctx.cnn_model, "inputs": ctx.predict_x[:1].tolist()}
    child = worker.pool_child()
    with ctx.client() as client:
        for _ in range(sizes.memory_first):
            run_job(client, "predict", spec)
    first = worker.child_rss_bytes() / MiB
    details: dict[str, float] = {}
    opened: list[TensorQClient] = []
    done, chunk = sizes.memory_first, max(1, sizes.memory_jobs // 5)
    try:
        while done < sizes.memory_jobs:
            step = min(chunk, sizes.memory_jobs - done)
            concurrent_rate(lambda: _job_caller(ctx, "predict", spec, opened), min(sizes.clients, 4), step)
            done += step
            details[f"rss_mib_after_{done}"] = worker.child_rss_bytes() / MiB
    finally:
        for client in opened:
            client.close()
    if worker.pool_child() != child:
        raise RuntimeError("the worker's pool child was replaced during the memory figure")
    return [Measurement("worker_rss", worker.child_rss_bytes() / MiB, first, details)]


def submit_latency(ctx: Context, run: int) -> list[Measurement]:
    """``POST /v1/jobs`` alone with the worker paused, against a constant Flask route under the same gunicorn."""
    sizes = ctx.sizes
    body = {"type": "predict", "spec": ctx.tiny_spec()}
    headers = {"Authorization": f"Bearer {ctx.stack.key}"}
    submitted: list[str] = []
    opened: list[httpx.Client] = []

    def poster(base_url: str) -> Callable[[], object]:
        client = httpx.Client(base_url=base_url, headers=headers, timeout=60)
        opened.append(client)

        def post() -> None:
            response = client.post("/v1/jobs", json=body)
            if response.status_code != 202:
                raise RuntimeError(f"POST /v1/jobs answered {response.status_code}: {response.text[:200]}")
            if base_url == ctx.stack.api_url:
                submitted.append(response.json()["id"])

        return post

    api, constant = ctx.stack.api_url, ctx.stack.constant_url
    try:
        with ctx.stack.worker.paused():
            try:
                api_lat = samples(poster(api), sizes.submit_samples, warmup=5)
                constant_lat = samples(poster(constant), sizes.submit_samples, warmup=5)
                api_rps = concurrent_rate(lambda: poster(api), sizes.clients, sizes.submit_requests)
                constant_rps = concurrent_rate(lambda: poster(constant), sizes.clients, sizes.submit_requests)
            finally:
                _cancel(ctx, submitted)
    finally:
        for client in opened:
            client.close()
    _wait_for_empty_queue(ctx)
    return [
        Measurement("submit_latency_p50", percentile(api_lat, 50) * MS, percentile(constant_lat, 50) * MS),
        Measurement("submit_latency_p99", percentile(api_lat, 99) * MS, percentile(constant_lat, 99) * MS),
        Measurement("submit_rps", api_rps, constant_rps, {"clients": float(sizes.clients)}),
    ]


def _cancel(ctx: Context, job_ids: list[str]) -> None:
    """Cancel the jobs submitted while the worker was paused, so that it only skips their messages afterwards."""
    for job_id in job_ids:
        try:
            ctx.stack.db.jobs.cancel(ctx.stack.tenant_id, job_id)
        except Exception:  # noqa: BLE001 - already finished: nothing to skip
            pass


def _wait_for_empty_queue(ctx: Context, timeout: float = 120.0) -> None:
    """Wait until the worker has drained the predict queue (it skips cancelled jobs quickly)."""
    import redis

    client = redis.Redis.from_url(ctx.stack.settings.broker_url)

    def empty() -> bool:
        keys = [k for k in client.scan_iter(match="predict*") if client.type(k) == b"list"]
        return sum(client.llen(k) for k in keys) == 0

    try:
        wait_until(empty, "the predict queue to drain", timeout)
    except TimeoutError:
        ctx.say("  (the predict queue did not drain in time; continuing)")
    finally:
        client.close()


@dataclass(frozen=True)
class Group:
    """A figure function, the figures it yields, and whether it runs once rather than once per repeat."""

    name: str
    run: Callable[[Context, int], list[Measurement]]
    names: tuple[str, ...]
    once: bool = False
    repeats: str = "repeats"  # the Sizes field that says how many times it runs


GROUPS: tuple[Group, ...] = (
    Group(
        "latency",
        e2e_latency,
        ("e2e_latency_p50", "e2e_latency_p99", "e2e_latency_two_requests_p50", "e2e_latency_each_change_p50"),
    ),
    Group("throughput", throughput, ("throughput",)),
    Group("train", train_time, ("train_time", "train_cpu"), repeats="train_repeats"),
    Group("agent", agent_time, ("agent_time_to_195", "agent_env_steps_to_195"), repeats="train_repeats"),
    Group("predict", predict_time, ("predict_time", "predict_cpu")),
    Group("explain", explain_time, ("explain_time", "explain_vs_tape", "explain_cpu")),
    Group("memory", worker_memory, ("worker_rss",), once=True),
    Group("submit", submit_latency, ("submit_latency_p50", "submit_latency_p99", "submit_rps")),
    Group("batch", batch_throughput, ("batch_throughput", "batch_parent_throughput")),
    # After latency and throughput (it compares with their figures of the same repeat); restarts the worker.
    Group(
        "batching",
        batching,
        ("throughput_batching_off", "throughput_on_vs_off", "latency_p50_on_vs_off", "latency_p99_on_vs_off"),
    ),
    # Restarts the worker (micro-batching off) and back, like batching.
    Group("explain_batching", explain_batching, ("explain_throughput_on_vs_off",)),
    Group("speech", speech_train, ("speech_train_time", "speech_train_cpu"), repeats="train_repeats"),
    Group("streaming", streaming_train, ("streaming_train_time", "streaming_train_rss"), once=True),
    # The peer's API and worker start and stop within it.
    Group("peer", versus_peer, ("peer_latency_p50", "peer_latency_p99", "peer_throughput", "peer_api_cpu")),
    # Its own one-process API; jobs it queues and cancels itself (never published).
    Group("waits", concurrent_waits, ("waits_wake_p50", "waits_wake_p99", "waits_healthz_p99", "waits_rss"), once=True),
    # Each starts a second worker for its two-worker runs and stops it after them.
    Group("sharded", sharded_predict, ("shard_predict_2_vs_1_workers",)),
    Group(
        "tune",
        tuning,
        ("tune_best_vs_keras_tuner", "tune_epochs_pruning_on_vs_off", "tune_wall_2_vs_1_workers"),
    ),
    # Last: the jobs it adds stay in the database.
    Group("grown", grown_database, tuple(f"grown_{s}_p50" for s in ("submit", "claim", "e2e", "metrics")), once=True),
)
