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


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_quick_bench_runs_end_to_end_and_fills_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--check", "--json", str(out)],
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
    assert {"e2e_latency_p50", "throughput", "train_time", "predict_time", "explain_time", "worker_rss"} <= names
    assert {"submit_latency_p50", "submit_rps", "explain_throughput_on_vs_off"} <= names
    for figure in result["figures"]:
        for key in ("value", "baseline", "ratio"):
            value = figure[key]
            assert isinstance(value, int | float), (figure["name"], key, value)
            assert math.isfinite(value), (figure["name"], key, value)
        assert figure["baseline_label"]
        assert figure["target"]
        assert figure["runs"], figure["name"]
