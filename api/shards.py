"""Sharded predict and explain: a job on more rows than ``shard_rows`` (or whose spec asks for ``shards``) is
submitted as a parent with one child job per row range (``db.parents``); the parent's result joins theirs in
row order (``db.shards``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from api.services import services
from db.newjob import NewJob
from db.records import DatasetRecord, ModelVersionRecord
from ml.catalog import PER_ROW_METHODS
from ml.specs import ExplainSpec, PredictSpec
from tensorq.core.errors import InvalidRequest, OutOfRange
from tensorq.core.settings import Settings

# The model tasks whose predict results join row by row.
SHARDED_TASKS = ("classify", "regress")


def plan(tenant_id: str, spec: Any, new: NewJob) -> tuple[NewJob, list[NewJob]] | None:
    """The parent and children a predict or explain ``new`` (its typed ``spec`` checked) is submitted as when
    it is sharded; None when it runs as one job."""
    if not isinstance(spec, PredictSpec | ExplainSpec) or spec.shard is not None:
        return None
    svc = services()
    dataset = getattr(spec, "dataset", None)
    record = svc.db.datasets.get(tenant_id, dataset) if dataset and not dataset.startswith("builtin:") else None
    rows = rows_of(spec, record)
    shards = shard_count(spec, rows, svc.settings)
    if shards < 2 or rows is None:
        return None
    refuse_unshardable(spec, svc.db.models.resolve(tenant_id, spec.model))
    return as_parent(new, shards), children(new, spec, rows, shards)


def rows_of(spec: PredictSpec | ExplainSpec, record: DatasetRecord | None) -> int | None:
    """How many rows the spec runs on, when the server knows before running it (inline, or an upload)."""
    if spec.inputs is not None:
        return len(spec.inputs)
    if record is not None and isinstance(record.info.get("rows"), int):
        return int(record.info["rows"])
    return None


def shard_count(spec: PredictSpec | ExplainSpec, rows: int | None, settings: Settings) -> int:
    """How many shards the spec runs in: its ``shards``, else one per ``shard_rows`` rows (1: unsharded)."""
    if spec.shards is not None:
        if spec.shards > settings.max_shards:
            raise OutOfRange(
                f"at most {settings.max_shards} shards (max_shards)",
                details={"field": "spec.shards", "limit": settings.max_shards},
            )
        if rows is None:
            raise InvalidRequest(
                "'shards' splits inline inputs or an uploaded dataset", details={"field": "spec.shards"}
            )
        return min(spec.shards, rows)
    if not settings.shard_rows or rows is None or rows <= settings.shard_rows:
        return 1
    if isinstance(spec, ExplainSpec) and (spec.method not in PER_ROW_METHODS or spec.baseline == "mean"):
        return 1
    return min(-(-rows // settings.shard_rows), settings.max_shards)


def refuse_unshardable(spec: PredictSpec | ExplainSpec, version: ModelVersionRecord) -> None:
    """InvalidRequest for a sharded predict whose model's results do not join row by row."""
    if isinstance(spec, PredictSpec) and version.interface.task not in SHARDED_TASKS:
        raise InvalidRequest(
            f"a {version.interface.task} model's predict is not sharded", details={"field": "spec.shards"}
        )


def children(new: NewJob, spec: PredictSpec | ExplainSpec, rows: int, shards: int) -> list[NewJob]:
    """One child job per shard: the parent's submission on its rows (inline inputs sliced, or a dataset's
    ``row_range``), numbered by ``shard``."""
    bounds = [round(i * rows / shards) for i in range(shards + 1)]
    own = {key: value for key, value in new.spec.items() if key != "shards"}
    made = []
    for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        part: dict[str, Any] = {**own, "shard": index}
        if spec.inputs is not None:
            part["inputs"] = spec.inputs[start:stop]
        else:
            part["row_range"] = [start, stop]
        made.append(replace(new, spec=part, callback_url=None))
    return made


def as_parent(new: NewJob, shards: int) -> NewJob:
    """The sharded job's parent: its submission with ``shards`` said, failing fast."""
    return replace(new, spec={**new.spec, "shards": shards}, max_failed_children=0, max_retries=0)
