"""The bench still runs end to end: ``python -m bench --quick --check`` exits 0 with every figure filled in.

It proves the suite works, never how fast TensorQ is: no figure is compared with its target here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# The quick bench runs as four parts that pytest-xdist hands to its workers: the trainings (TensorFlow-bound),
# the figures that start services of their own (the peer, the waits' API, the grown database), the figures of
# jobs made of jobs (a second worker each) and the rest.
# Together they are every group of ``bench.figures.GROUPS``.
PART_GROUPS = {
    "training": ("train", "agent", "speech", "streaming"),
    "own_services": ("peer", "waits", "grown"),
    # Jobs made of jobs: each starts a second worker of its own for a while.
    "graphs": ("sharded", "tune"),
}


@pytest.mark.e2e
@pytest.mark.timeout(900)
@pytest.mark.parametrize("part", ["services", "own_services", "training", "graphs"])
def test_quick_bench_runs_end_to_end_and_fills_every_figure(tmp_path: Path, part: str) -> None:
    from bench.figures import GROUPS

    elsewhere = {name for other, names in PART_GROUPS.items() if other != part for name in names}
    groups = [g for g in GROUPS if g.name in PART_GROUPS[part]] if part in PART_GROUPS else []
    groups = groups or [g for g in GROUPS if g.name not in elsewhere]
    out = tmp_path / "bench.json"
    only = ",".join(g.name for g in groups)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--check", "--only", only, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=870,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "quick"
    assert result["errors"] == []
    assert result["machine"]["cores"] >= 1
    assert result["machine"]["packages"]["tensorflow"]
    names = {f["name"] for f in result["figures"]}
    assert {name for g in groups for name in g.names} <= names
    if part == "services":
        assert {"e2e_latency_p50", "throughput", "predict_time", "explain_time", "worker_rss"} <= names
        assert {"submit_latency_p50", "submit_rps", "explain_throughput_on_vs_off"} <= names
    elif part == "training":
        assert {"train_time", "agent_time_to_195", "speech_train_time"} <= names
    elif part == "graphs":
        assert {"shard_predict_2_vs_1_workers", "tune_best_vs_keras_tuner", "tune_wall_2_vs_1_workers"} <= names
    else:
        assert {"peer_latency_p50", "waits_wake_p99", "grown_metrics_p50"} <= names
    for figure in result["figures"]:
        for key in ("value", "baseline", "ratio"):
            value = figure[key]
            assert isinstance(value, int | float), (figure["name"], key, value)
            assert math.isfinite(value), (figure["name"], key, value)
        assert figure["baseline_label"]
        assert figure["target"]
        assert figure["runs"], figure["name"]


def test_soak_slope_is_the_least_squares_fit_per_pool_child_after_the_warm_up() -> None:
    from bench.soak import Sample, lives, slope

    assert slope([(0, 1.0), (1000, 3.0), (2000, 5.0)]) == 0.002
    assert math.isnan(slope([(5, 1.0)]))
    samples = [Sample(0, jobs, 0, 11, 100 + jobs / 1000, 7) for jobs in (0, 1000, 2000, 3000)]
    samples += [Sample(0, jobs, 0, 12, 50.0, 9) for jobs in (4000, 5000)]  # a new pool child: its own life
    fitted = {life.pid: life for life in lives(samples, warmup_jobs=1000)}
    assert fitted[11].samples == 3
    assert fitted[11].jobs == 2000
    assert fitted[11].slope_mib_per_1000 == 1.0
    assert fitted[12].slope_mib_per_1000 == 0.0
    assert fitted[12].threads_last == 9


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_a_short_soak_samples_the_pool_child_and_fits_a_slope(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = ["--minutes", "0.4", "--rate", "4", "--workers", "1", "--warmup-jobs", "0", "--sample-s", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", *argv, "--train-every-s", "8", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=570,
    )
    # 0: within the goal; 1: over it (seconds of load are mostly warm-up); never 2 (no slope) or a crash.
    assert proc.returncode in (0, 1), proc.stdout[-6000:] + proc.stderr[-6000:]
    assert "MiB per 1,000 jobs" in proc.stdout
    result = json.loads(out.read_text())
    assert result["jobs"] > 0
    assert result["trainings"] >= 1
    assert result["submit_errors"] == []
    assert len(result["samples"]) >= 3
    assert all(s["rss_mib"] > 0 and s["threads"] > 0 and s["names"] for s in result["samples"])
    assert math.isfinite(result["slope_mib_per_1000"])
