"""The agent figures: a CartPole policy trained until its greedy mean return over 100 episodes reaches 195, as a
``train`` job and as the same training in one plain process (``ml.reinforce.train_agent`` called directly)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.jobs import median_parts, run_job
from bench.measure import Stopwatch
from bench.specs import Measurement

TARGET = 195.0


def agent_spec(seed: int) -> dict[str, Any]:
    """The train spec of the figure: CartPole-v1 to a mean return of 195 over 100 greedy episodes."""
    environment = {"name": "CartPole-v1", "max_steps": 200_000, "target_return": TARGET, "eval_episodes": 100}
    return {"architecture": "policy", "seed": seed, "register_as": "bench-agent", "environment": environment}


def plain_agent(spec: dict[str, Any]) -> dict[str, float]:
    """The same training as a plain script in this process: wall and CPU seconds, steps and the mean return."""
    from ml.reinforce import train_agent
    from ml.specs import TrainSpec

    typed = TrainSpec.model_validate(spec)
    assert typed.environment is not None
    watch = Stopwatch()
    with tempfile.TemporaryDirectory() as folder:
        outcome = train_agent(typed, typed.environment, Path(folder))
    timing = watch.read()
    return {"total_s": timing.wall_s, "cpu_s": timing.cpu_s, **outcome.metrics}


def agent_time(ctx: Context, run: int) -> list[Measurement]:
    """The time and environment steps to a mean return of 195: the job (claim to succeeded) against the plain
    script, both seeded alike (so the same steps, when TensorFlow's CPU kernels are deterministic)."""
    spec = agent_spec(seed=run)
    with ctx.client() as client:
        before = ctx.stack.worker.child_cpu_seconds()
        done = run_job(client, "train", spec, timeout=1800)
        worker_cpu_s = ctx.stack.worker.child_cpu_seconds() - before
    start = time.perf_counter()
    plain = plain_agent(spec)
    ctx.say(f"  agent seed {run}: job {done.job_s:.1f} s, plain {time.perf_counter() - start:.1f} s")
    metrics = done.job.result["metrics"]
    details = {
        **median_parts([done]),
        "mean_return": float(metrics["mean_return"]),
        "random_return": float(metrics["random_return"]),
        "reached_target": float(metrics.get("reached_target", 0.0)),
        "worker_cpu_s": worker_cpu_s,
        "baseline_cpu_s": plain["cpu_s"],
        "baseline_mean_return": float(plain["mean_return"]),
    }
    return [
        Measurement("agent_time_to_195", done.job_s, plain["total_s"], details),
        Measurement("agent_env_steps_to_195", float(metrics["env_steps"]), float(plain["env_steps"])),
    ]
