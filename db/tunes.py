"""A tune job's result, made in the transaction that ends it: its trials table (each trial's params, metric,
state and epochs run), the best trial and its params, the params' importances (which the last trial to end
computed), and the best trial's model registered again under the tune's own model name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from db.models import Job, ModelVersion
from db.newjob import NewJob, insert_new
from db.records import ModelVersionDraft
from db.registry import insert_version


def tune_result(conn: Connection, parent_id: str) -> dict[str, Any]:
    """The result of the tune ``parent_id`` (empty for a parent that is no tune)."""
    parent = conn.execute(select(Job.type, Job.spec, Job.tenant_id).where(Job.id == parent_id)).one_or_none()
    if parent is None or parent.type != "tune":
        return {}
    spec = parent.spec or {}
    children = conn.execute(
        select(Job.id, Job.status, Job.spec, Job.result).where(Job.parent_id == parent_id).order_by(Job.created_at)
    ).all()
    trials = sorted(
        (_trial_row(child, spec.get("metric", "val_loss")) for child in children), key=lambda t: t["number"]
    )
    complete = [trial for trial in trials if trial["state"] == "complete" and trial["value"] is not None]
    result: dict[str, Any] = {"trials": trials, "metric": spec.get("metric"), "direction": spec.get("direction")}
    imported = [child.result["importances"] for child in children if (child.result or {}).get("importances")]
    result["importances"] = imported[-1] if imported else {}
    if not complete:
        return result
    pick = min if spec.get("direction", "minimize") == "minimize" else max
    best = pick(complete, key=lambda trial: trial["value"])
    result.update(
        best_trial=best["number"], best_params=best["params"], best_value=best["value"], best_job_id=best["job_id"]
    )
    result.update(_register_best(conn, parent.tenant_id, parent_id, best["job_id"], spec.get("model_name")))
    return result


def _trial_row(child: Any, metric: str) -> dict[str, Any]:
    """One row of the trials table."""
    trial = (child.spec or {}).get("trial") or {}
    result = child.result or {}
    pruned = bool(result.get("pruned"))
    state = {"succeeded": "pruned" if pruned else "complete"}.get(child.status, child.status)
    value = (result.get("metrics") or {}).get(metric)
    return {
        "number": int(trial.get("number", 0)),
        "job_id": child.id,
        "params": trial.get("params", {}),
        "value": None if value is None else float(value),
        "state": state,
        "epochs_run": result.get("epochs_run"),
    }


def _register_best(conn: Connection, tenant_id: str, parent_id: str, job_id: str, name: str | None) -> dict[str, Any]:
    """The best trial's model version registered again under ``name`` (by the tune job): its id and number."""
    versions = ModelVersion.__table__
    trained = conn.execute(select(versions).where(versions.c.training_job_id == job_id)).first()
    if trained is None or not name:
        return {}
    draft = ModelVersionDraft(
        model_name=name,
        path=trained.path,
        architecture=trained.architecture,
        metrics=trained.metrics,
        signature=trained.signature,
        lineage={**(trained.lineage or {}), "tune_job_id": parent_id, "trial_job_id": job_id},
    )
    with Session(bind=conn) as session:  # joins the ending transaction: committed with it or not at all
        version = insert_version(session, tenant_id, parent_id, draft)
    return {"model_id": version.model_id, "version": version.version, "model_name": name}


def top_up(
    conn: Connection, parent_id: str, make: Callable[[dict[str, Any], int], list[NewJob]], *, publishing: bool
) -> list[dict[str, Any]]:
    """As one of its trials ends, keep the tune ``parent_id``'s ``parallelism`` trials going while it has trials
    left to make: ``make(spec, count)`` asks the study for them. The tune's row is locked meanwhile (no two
    ending trials make the same one); a tune ended or decided (cancelled, all failed) makes none."""
    parent = conn.execute(select(Job.__table__).where(Job.id == parent_id).with_for_update()).one_or_none()
    if parent is None or parent.type != "tune" or parent.status not in ("queued", "running") or parent.cancel_requested:
        return []
    made = conn.execute(select(func.count()).select_from(Job).where(Job.parent_id == parent_id)).scalar_one()
    ended = parent.children_succeeded + parent.children_failed + parent.children_cancelled
    spec = parent.spec or {}
    in_flight = made - ended - 1  # the trial ending now is no longer one
    count = min(parent.children_total - made, int(spec.get("parallelism", 1)) - in_flight)
    if count <= 0:
        return []
    return insert_new(conn, [replace_parent(new, parent_id) for new in make(spec, count)], publishing=publishing)


def replace_parent(new: NewJob, parent_id: str) -> NewJob:
    """``new`` as a child of ``parent_id``."""
    return replace(new, parent_id=parent_id)
