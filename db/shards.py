"""Sharded predict and explain (``api.shards`` splits them): a succeeded parent's result is its children's,
joined in row order (each child's spec holds its ``shard`` index), as one unsharded run gives it. Files stay
each child's own: the parent lists them by child (``parts``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from db.models import Job

# The result keys that hold one entry per row: joined by concatenation in row order.
PER_ROW = ("outputs", "classes", "labels", "attributions", "targets", "per_input_quality", "tokens")
# The keys joined some other way (or left to the children: their files and previews).
OWN_WAY = ("rows", "metrics", "quality", "artifacts", "classes_preview", "labels_preview")


def joined_shards(conn: Connection, parent_id: str) -> dict[str, Any]:
    """The outputs of a sharded parent's succeeded children joined in row order (empty for a parent that is
    not a sharded predict or explain)."""
    parent = conn.execute(select(Job.type, Job.spec).where(Job.id == parent_id)).one_or_none()
    if parent is None or parent.type not in ("predict", "explain") or not (parent.spec or {}).get("shards"):
        return {}
    rows = conn.execute(
        select(Job.id, Job.spec, Job.result).where(Job.parent_id == parent_id, Job.status == "succeeded")
    ).all()
    parts = sorted(rows, key=lambda row: int((row.spec or {}).get("shard", 0)))
    return join(parent.type, [(row.id, row.result or {}) for row in parts])


def join(kind: str, parts: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The result of ``kind`` ("predict" or "explain") that the shards' results (job id, result), in row
    order, make together."""
    if not parts:
        return {}
    results = [result for _, result in parts]
    joined = {key: value for key, value in results[0].items() if key not in PER_ROW and key not in OWN_WAY}
    for key in PER_ROW:
        if all(isinstance(result.get(key), list) for result in results):
            joined[key] = [row for result in results for row in result[key]]
        elif key in results[0]:
            joined[key] = results[0][key]
    if any(result.get("artifacts") for result in results):
        joined["parts"] = [{"job_id": job_id, "artifacts": result.get("artifacts", [])} for job_id, result in parts]
    if kind == "predict":
        joined["rows"] = sum(int(result.get("rows", 0)) for result in results)
        metrics = _metrics([result["metrics"] for result in results if result.get("metrics")])
        if metrics:
            joined["metrics"] = metrics
    elif any("quality" in result for result in results):
        joined["quality"] = _worst_quality(str(joined.get("method", "")), [r.get("quality") or {} for r in results])
    return joined


def _metrics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy or RMSE over all the shards' labelled rows, from each shard's figure and row count."""
    total = sum(int(part.get("labelled_rows", 0)) for part in parts)
    if not parts or not total:
        return {}
    if all("accuracy" in part for part in parts):
        hits = sum(float(part["accuracy"]) * int(part["labelled_rows"]) for part in parts)
        return {"accuracy": round(hits / total, 6), "labelled_rows": total}
    squares = sum(float(part["rmse"]) ** 2 * int(part["labelled_rows"]) for part in parts if "rmse" in part)
    return {"rmse": round(math.sqrt(squares / total), 6), "labelled_rows": total}


def _worst_quality(method: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The quality figure of the worst row over all shards (lime's fit: the lowest; a gap: the highest)."""
    worst: dict[str, Any] = {}
    pick = min if method == "lime" else max
    for part in parts:
        for name, value in part.items():
            worst[name] = value if name not in worst else pick(worst[name], value)
    return worst
