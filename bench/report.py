"""Aggregating repeats into medians, printing the table, writing the JSON, and checking that every figure is there."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.measure import median, ratio
from bench.specs import SPECS, Measurement


def _clean(value: Any) -> Any:
    """``value`` with NaN and infinities as None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def figure(name: str, runs: list[Measurement]) -> dict[str, Any]:
    """The median value and baseline over the repeats, their ratio, the target and the per-repeat figures."""
    spec = SPECS[name]
    value = median([m.value for m in runs])
    baseline = median([m.baseline for m in runs])
    r = ratio(value, baseline)
    keys = sorted({k for m in runs for k in m.details})
    return {
        "name": name,
        "label": spec.label,
        "unit": spec.unit,
        "value": value,
        "baseline": baseline,
        "baseline_label": spec.baseline_label,
        "ratio": r,
        "target": spec.target_text(),
        "target_ratio": spec.target,
        "holds": spec.holds(r),
        "runs": [{"value": m.value, "baseline": m.baseline, "ratio": ratio(m.value, m.baseline)} for m in runs],
        "details": {k: median([m.details[k] for m in runs if k in m.details]) for k in keys},
    }


def build(measurements: dict[str, list[Measurement]], names: Iterable[str], **meta: Any) -> dict[str, Any]:
    """The whole result: ``meta`` (command, machine, sizes, ...) and one entry per expected figure."""
    return {**meta, "figures": [figure(name, measurements.get(name, [])) for name in names]}


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 1 else 3
    return f"{value:.{digits}f}"


def table(result: dict[str, Any]) -> str:
    """A Markdown table of the figures: value, baseline, ratio, target and whether it holds."""
    lines = [
        "| figure | TensorQ | baseline (same run) | ratio | target | holds |",
        "|---|---|---|---|---|---|",
    ]
    for f in result["figures"]:
        holds = {True: "yes", False: "**no**", None: "–"}[f["holds"]]
        ratio_text = f"{_num(f['ratio'])}x" if f["ratio"] is not None and math.isfinite(f["ratio"]) else "—"
        lines.append(
            f"| {f['label']} | {_num(f['value'])} {f['unit']} | {_num(f['baseline'])} {f['unit']} "
            f"({f['baseline_label']}) | {ratio_text} | {f['target']} | {holds} |"
        )
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: Path) -> None:
    """Write ``result`` as strict JSON (NaN becomes null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(result), indent=2) + "\n")


def problems(result: dict[str, Any]) -> list[str]:
    """Every figure whose value, baseline or ratio is missing or not finite."""
    found = []
    for f in result["figures"]:
        for key in ("value", "baseline", "ratio"):
            v = f.get(key)
            if not isinstance(v, int | float) or not math.isfinite(v):
                found.append(f"{f['name']}: {key} is missing")
    return found


def breakdowns(result: dict[str, Any]) -> str:
    """Lines that say where the time and CPU of the tiny jobs went (from the figures' details)."""
    details = {f["name"]: f["details"] for f in result["figures"] if f.get("details")}
    lines = []
    parts = details.get("e2e_latency_two_requests_p50", {})
    if "median_post_s" in parts:
        lines.append(
            "tiny job (a POST, then GET ?wait=), median parts: "
            f"POST {_num(parts['median_post_s'] * 1e3)} ms, queued {_num(parts['median_queued_s'] * 1e3)} ms, "
            f"running {_num(parts['median_running_s'] * 1e3)} ms, seen {_num(parts['median_notice_s'] * 1e3)} ms "
            f"after finishing, {_num(parts['median_gets'])} GETs per job"
        )
    cpu = details.get("throughput", {})
    if "cpu_ms_per_job_total" in cpu:
        ours = ", ".join(
            f"{k.removeprefix('cpu_ms_per_job_')} {_num(v)}"
            for k, v in cpu.items()
            if k.startswith("cpu_ms_per_job_") and k != "cpu_ms_per_job_total"
        )
        raw = ", ".join(
            f"{k.removeprefix('raw_cpu_ms_per_task_')} {_num(v)}"
            for k, v in cpu.items()
            if k.startswith("raw_cpu_ms_per_task_") and k != "raw_cpu_ms_per_task_total"
        )
        lines.append(f"CPU ms per tiny job: {_num(cpu['cpu_ms_per_job_total'])} ({ours})")
        lines.append(f"CPU ms per raw Celery task: {_num(cpu['raw_cpu_ms_per_task_total'])} ({raw})")
    explain = details.get("explain_throughput_on_vs_off", {})
    if "jobs_per_claim_on" in explain:
        lines.append(
            f"tiny explain jobs per claim, {int(explain['clients'])} clients: micro-batching on "
            f"{_num(explain['jobs_per_claim_on'])}, off {_num(explain['jobs_per_claim_off'])}"
        )
    return "\n".join(lines)
