"""What each figure is: its label and unit, its baseline, and its target as a bound on value / baseline."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FigureSpec:
    """A figure's description; ``target`` None means reported only, ``at_least`` makes it a lower bound."""

    label: str
    unit: str
    baseline_label: str
    target: float | None = None
    at_least: bool = False

    def target_text(self) -> str:
        """The target as the table shows it."""
        if self.target is None:
            return "report"
        return f"{'>=' if self.at_least else '<='} {self.target:g}x"

    def holds(self, ratio: float) -> bool | None:
        """Whether ``ratio`` meets the target (None when there is no target or no ratio)."""
        if self.target is None or ratio != ratio:
            return None
        return ratio >= self.target if self.at_least else ratio <= self.target


@dataclass
class Measurement:
    """One repeat of one figure: the TensorQ value, its baseline, and a breakdown."""

    name: str
    value: float
    baseline: float
    details: dict[str, float] = field(default_factory=dict)


SPECS: dict[str, FigureSpec] = {
    "e2e_latency_p50": FigureSpec(
        label="tiny predict: submit -> result, as TensorQClient.run (one POST ?wait=), p50",
        unit="ms",
        baseline_label="raw Celery delay().get() no-op, p50",
        target=3.0,
    ),
    "e2e_latency_p99": FigureSpec(
        label="tiny predict: submit -> result, as TensorQClient.run (one POST ?wait=), p99",
        unit="ms",
        baseline_label="raw Celery delay().get() no-op, p99",
        target=4.0,
    ),
    "e2e_latency_two_requests_p50": FigureSpec(
        label="the same, a POST then GET ?wait=&until=finished, p50",
        unit="ms",
        baseline_label="raw Celery delay().get() no-op, p50",
    ),
    "e2e_latency_each_change_p50": FigureSpec(
        label="the same, a POST then GETs long-polling each change (no until=finished), p50",
        unit="ms",
        baseline_label="raw Celery delay().get() no-op, p50",
    ),
    "throughput": FigureSpec(
        label="tiny predict jobs/s, concurrent single-job clients (as TensorQClient.run), micro-batching on",
        unit="jobs/s",
        baseline_label="raw Celery no-op tasks/s, same worker count",
        target=1.0,
        at_least=True,
    ),
    "throughput_batching_off": FigureSpec(
        label="the same, micro-batching off (TENSORQ_BATCH_MAX_JOBS=1)",
        unit="jobs/s",
        baseline_label="raw Celery no-op tasks/s, same worker count",
    ),
    "throughput_on_vs_off": FigureSpec(
        label="tiny predict jobs/s, micro-batching on",
        unit="jobs/s",
        baseline_label="the same clients, micro-batching off",
    ),
    "latency_p50_on_vs_off": FigureSpec(
        label="single tiny job submit -> result p50, micro-batching on",
        unit="ms",
        baseline_label="the same, micro-batching off",
        target=1.1,
    ),
    "latency_p99_on_vs_off": FigureSpec(
        label="single tiny job submit -> result p99, micro-batching on",
        unit="ms",
        baseline_label="the same, micro-batching off",
    ),
    "explain_throughput_on_vs_off": FigureSpec(
        label="tiny explain jobs/s (integrated_gradients, one row, 64 steps), single-job clients, micro-batching on",
        unit="jobs/s",
        baseline_label="the same clients, micro-batching off",
    ),
    "train_time": FigureSpec(
        label="train job, CNN, started_at -> finished_at",
        unit="s",
        baseline_label="plain Keras: build + model.fit",
        target=1.05,
    ),
    "agent_time_to_195": FigureSpec(
        label="train job, CartPole-v1 agent (PPO) to a mean return of 195 over 100 episodes, started -> finished",
        unit="s",
        baseline_label="the same training as a plain script in one process (ml.reinforce.train_agent)",
        target=1.1,
    ),
    "agent_env_steps_to_195": FigureSpec(
        label="train job, CartPole-v1 agent: environment steps to a mean return of 195",
        unit="steps",
        baseline_label="the plain script's steps, seeded alike",
    ),
    "train_cpu": FigureSpec(
        label="train job: CPU seconds of the worker's pool child",
        unit="cpu-s",
        baseline_label="CPU seconds of the plain build + model.fit",
    ),
    "speech_train_time": FigureSpec(
        label="train job, audio_cnn on builtin:spoken_digits (8 kHz, 0.6 s), started_at -> finished_at",
        unit="s",
        baseline_label="plain script in-process: load clips, split, build, fit, evaluate",
        target=1.1,
    ),
    "speech_train_cpu": FigureSpec(
        label="speech train job: CPU seconds of the worker's pool child",
        unit="cpu-s",
        baseline_label="CPU seconds of the plain speech script",
    ),
    "predict_time": FigureSpec(
        label="predict job on a dataset, model cached",
        unit="s",
        baseline_label="ml.inference.predict in-process",
        target=1.15,
    ),
    "predict_cpu": FigureSpec(
        label="predict job: CPU seconds of the worker's pool child",
        unit="cpu-s",
        baseline_label="CPU seconds of ml.inference.predict",
    ),
    "explain_time": FigureSpec(
        label="integrated_gradients explain job",
        unit="s",
        baseline_label="ml.explain.integrated_gradients in-process",
        target=1.5,
    ),
    "explain_vs_tape": FigureSpec(
        label="integrated_gradients explain job",
        unit="s",
        baseline_label="raw GradientTape passes (steps x batch)",
    ),
    "explain_cpu": FigureSpec(
        label="explain job: CPU seconds of the worker's pool child",
        unit="cpu-s",
        baseline_label="CPU seconds of ml.explain.integrated_gradients",
    ),
    "streaming_train_time": FigureSpec(
        label="mlp, 2 epochs on a Parquet table streamed in chunks (ml.streaming): wall time",
        unit="s",
        baseline_label="the same table loaded whole",
        target=1.25,  # streamed throughput at least 0.8x the in-memory one (issue 21)
    ),
    "streaming_train_rss": FigureSpec(
        label="the same, peak resident memory the streamed training adds",
        unit="MiB",
        baseline_label="peak added loading it whole",
    ),
    "worker_rss": FigureSpec(
        label="worker pool child VmRSS after all predict jobs",
        unit="MiB",
        baseline_label="VmRSS after the first 10",
        target=1.1,
    ),
    "submit_latency_p50": FigureSpec(
        label="POST /v1/jobs alone (worker paused), p50",
        unit="ms",
        baseline_label="constant Flask route, same gunicorn, p50",
    ),
    "submit_latency_p99": FigureSpec(
        label="POST /v1/jobs alone (worker paused), p99",
        unit="ms",
        baseline_label="constant Flask route, same gunicorn, p99",
    ),
    "submit_rps": FigureSpec(
        label="POST /v1/jobs requests/s (worker paused)",
        unit="req/s",
        baseline_label="constant Flask route, same gunicorn, req/s",
    ),
    "batch_throughput": FigureSpec(
        label="tiny predict jobs/s, POST /v1/jobs with 100-job batches, to the last success",
        unit="jobs/s",
        baseline_label="raw Celery group() of 100 no-op tasks, .get() each group",
        target=1.0,
        at_least=True,
    ),
    "batch_parent_throughput": FigureSpec(
        label="tiny predict jobs/s, 100-job batches each with a parent, the client long-polling the parents",
        unit="jobs/s",
        baseline_label="raw Celery group() of 100 no-op tasks, .get() each group",
        target=1.0,
        at_least=True,
    ),
    "grown_submit_p50": FigureSpec(
        label="POST /v1/jobs, p50, grown database (--grown-finished, --grown-queued)",
        unit="ms",
        baseline_label="the same just before the growth",
        target=1.3,
    ),
    "grown_claim_p50": FigureSpec(
        label="claim (conditional UPDATE with the running quota), p50, grown database",
        unit="ms",
        baseline_label="the same just before the growth",
        target=1.3,
    ),
    "grown_e2e_p50": FigureSpec(
        label="tiny predict submit -> result, p50, grown database",
        unit="ms",
        baseline_label="the same just before the growth",
        target=1.3,
    ),
    "grown_metrics_p50": FigureSpec(
        label="GET /metrics scrape, p50, grown database (target: under 20 ms at 1 M jobs)",
        unit="ms",
        baseline_label="the same just before the growth",
    ),
    "waits_wake_p50": FigureSpec(
        label="long-polls held by one API process (sizes: waiters), change -> its waiter's answer, p50",
        unit="ms",
        baseline_label="the same API, one waiter at a time, p50",
    ),
    "waits_wake_p99": FigureSpec(
        label="the same, p99 (target: within 50 ms at 1,000 waiters)",
        unit="ms",
        baseline_label="the same API, one waiter at a time, p99",
    ),
    "waits_healthz_p99": FigureSpec(
        label="GET /healthz every 20 ms while the waits are opened, held and woken, p99 (target: 100 ms)",
        unit="ms",
        baseline_label="the same with no waits, p99",
    ),
    "waits_rss": FigureSpec(
        label="the API process's VmRSS holding the waits (details: KiB per waiter)",
        unit="MiB",
        baseline_label="its VmRSS with no waits",
    ),
    "peer_latency_p50": FigureSpec(
        label="tiny predict: submit -> result, one client, as TensorQClient.run, p50",
        unit="ms",
        baseline_label="the peer (bench/peer.py: Flask + SQLAlchemy + Celery, polled every 5 ms), p50",
        target=1.0,
    ),
    "peer_latency_p99": FigureSpec(
        label="the same, p99",
        unit="ms",
        baseline_label="the peer, p99",
    ),
    "peer_throughput": FigureSpec(
        label="tiny predict jobs/s, single-job clients (sizes: clients)",
        unit="jobs/s",
        baseline_label="the peer's jobs/s, as many clients polling every 5 ms",
        target=1.2,
        at_least=True,
    ),
    "peer_api_cpu": FigureSpec(
        label="API CPU ms per job in that throughput run (gunicorn master and workers)",
        unit="ms",
        baseline_label="the peer's API CPU ms per job",
        target=1.5,
    ),
    # Jobs made of jobs (issue 22; bench/graphs.py).
    "shard_predict_2_vs_1_workers": FigureSpec(
        label="a sharded predict (sizes: shard_rows rows, 2 shards) on 1 worker, submit -> succeeded (the ratio: "
        "the speed-up of 2 workers)",
        unit="s",
        baseline_label="the same predict on 2 workers",
        target=1.7,
        at_least=True,
    ),
    "tune_best_vs_keras_tuner": FigureSpec(
        label="a tune (sizes: tune_trials trials, TPE, median pruner): best trial's last-epoch val_loss",
        unit="val_loss",
        baseline_label="Keras Tuner RandomSearch, same trials, data, space and model: best last-epoch val_loss",
        target=1.0,
    ),
    "tune_epochs_pruning_on_vs_off": FigureSpec(
        label="the epochs its trials ran with the median pruner (details: the best val_loss each way)",
        unit="epochs",
        baseline_label="the same tune with no pruner",
        target=0.6,
    ),
    "tune_wall_2_vs_1_workers": FigureSpec(
        label="the tune with no pruner on 1 worker, submit -> succeeded (the ratio: the speed-up of 2 workers)",
        unit="s",
        baseline_label="the same tune on 2 workers",
        at_least=True,
    ),
}
