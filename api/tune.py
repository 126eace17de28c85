"""``tune`` jobs at submit: the search space checked (422 naming a parameter the train spec does not have or
refuses), the study made in its own storage (``db.studies``), and the tune committed as a parent with its
first ``parallelism`` trials, each a child train job; the trials that end ask for the next ones."""

from __future__ import annotations

import functools
import uuid
from dataclasses import replace
from typing import Any

from api.accept import accept, admit, idempotency_key
from api.references import check_references
from api.services import services
from db import studies
from db.newjob import NewJob
from db.records import JobRecord, Principal
from ml.tuning import TuneSpec, check_search, grid_of, model_name, suggest, trial_spec
from tensorq.core.errors import OutOfRange


def submit_tune(who: Principal, new: NewJob, spec: TuneSpec, body: Any) -> JobRecord:
    """Check, make the study, commit the tune with its first trials and publish those; the tune job."""
    svc = services()
    limit = svc.settings.max_tune_trials
    if spec.n_trials > limit:
        raise OutOfRange(
            f"at most {limit} trials (max_tune_trials)", details={"field": "spec.n_trials", "limit": limit}
        )
    check_references(who.tenant_id, check_search(spec))
    grid = grid_of(spec)
    study = str(uuid.uuid4())
    url = svc.settings.database_url
    studies.create(url, study, spec.goal)
    draw = functools.partial(suggest, space=spec.search_space)
    first = studies.ask(
        url, study, min(spec.parallelism, spec.n_trials), draw, sampler=spec.sampler, seed=spec.seed, grid=grid
    )
    parent = replace(
        new,
        spec={**new.spec, "study": study, "direction": spec.goal, "model_name": model_name(spec)},
        children_total=spec.n_trials,
        max_failed_children=spec.n_trials - 1,
        max_retries=0,
    )
    trials = [trial_job(new, spec, study, number, point) for number, point in first]
    admit(who, [parent])
    return accept(who, trials, key=idempotency_key(), body=body, parent=parent)[-1]


def trial_job(tune: NewJob, spec: TuneSpec, study: str, number: int, point: dict[str, Any]) -> NewJob:
    """Trial ``number`` of a tune: a train job at ``point`` of the search space."""
    return replace(
        tune,
        type="train",
        spec=trial_spec(spec, study, number, point),
        name=f"{tune.name or 'tune'} trial {number}"[:200],
        callback_url=None,
        max_retries=0,
    )
