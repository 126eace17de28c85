"""A tune's trial, run as the train job it is: it reports its metric to the study after every epoch and stops
when the pruner says so (a pruned trial succeeds, with no model); as it ends it tells the study and asks for
the tune's next trials (``db.tunes.top_up``); the last to end adds the params' importances to its result."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from db import studies
from db.newjob import NewJob
from ml.specs import TrainSpec, TrialRef
from ml.tuning import TuneSpec, grid_of, suggest, trial_spec
from worker.context import HandlerResult, JobContext

log = logging.getLogger(__name__)

# The figures of a progress report that are no metric.
NOT_METRICS = ("epoch", "epochs")


class TrialPruned(Exception):
    """The study's pruner stopped the trial after this progress report."""

    def __init__(self, progress: dict[str, Any]) -> None:
        super().__init__(f"pruned after epoch {progress.get('epoch')}")
        self.progress = progress


def reporting(ctx: JobContext, trial: TrialRef, on_epoch: Callable[[dict[str, Any]], None]) -> Callable[[dict], None]:
    """``on_epoch`` that also reports the trial's metric to its study, and raises TrialPruned when pruned."""

    def epoch_done(progress: dict[str, Any]) -> None:
        on_epoch(progress)
        value = progress.get(trial.metric)
        if not isinstance(value, int | float):
            return
        url = ctx.settings.database_url
        if studies.report(url, trial.study, trial.number, trial.pruner, int(progress["epoch"]), float(value)):
            raise TrialPruned(progress)

    return epoch_done


def run_trial(ctx: JobContext, spec: TrainSpec, train_once: Callable[[Any], HandlerResult]) -> HandlerResult:
    """Run the trial ``spec.trial`` (``train_once(on_epoch wrapper)`` trains it), tell the study how it ended
    and start the tune's next trials."""
    trial = spec.trial
    assert trial is not None
    try:
        outcome = train_once(functools.partial(reporting, ctx, trial))
    except TrialPruned as pruned:
        figures = {k: v for k, v in pruned.progress.items() if k not in NOT_METRICS}
        result = {"pruned": True, "epochs_run": int(pruned.progress.get("epoch", 0)), "metrics": figures}
        _ended(ctx, trial, "pruned", None, result)
        return HandlerResult(result)
    except Exception:
        _ended(ctx, trial, "failed", None, {})
        raise
    value = (outcome.result.get("metrics") or {}).get(trial.metric)
    _ended(ctx, trial, "complete", None if value is None else float(value), outcome.result)
    return outcome


def _ended(ctx: JobContext, trial: TrialRef, state: str, value: float | None, result: dict[str, Any]) -> None:
    """Tell the study; the last trial adds the importances to ``result``; then ask for the next trials."""
    url = ctx.settings.database_url
    try:
        told = studies.tell(url, trial.study, trial.number, state, value)
        if told >= trial.n_trials:
            result["importances"] = studies.importances(url, trial.study)
        parent_id = ctx.job.parent_id
        if parent_id is None:
            return
        make = functools.partial(_next_trials, ctx, url)
        made = ctx.db.jobs.top_up_trials(parent_id, make, publishing=ctx.publisher is not None)
        if ctx.publisher is not None and made:
            ctx.publisher.publish_many(made)
    except Exception:  # noqa: BLE001 - the trial's own outcome stands; the study or the next trials failed
        log.warning(
            "trial %d of study %s: telling the study or starting the next trials failed",
            trial.number,
            trial.study,
            exc_info=True,
        )


def _next_trials(ctx: JobContext, url: str, tune_spec: dict[str, Any], count: int) -> list[NewJob]:
    """``count`` new trials of the tune whose spec is ``tune_spec``, asked of its study."""
    tune = TuneSpec.model_validate({k: v for k, v in tune_spec.items() if k in TuneSpec.model_fields})
    study = str(tune_spec["study"])

    draw = functools.partial(suggest, space=tune.search_space)
    asked = studies.ask(url, study, count, draw, sampler=tune.sampler, seed=tune.seed, grid=grid_of(tune))
    job = ctx.job
    return [
        NewJob(
            tenant_id=job.tenant_id,
            type="train",
            spec=trial_spec(tune, study, number, point),
            priority=job.priority,
            max_attempts=job.max_attempts,
            timeout_s=job.timeout_s,
            name=f"trial {number}",
            tags=tuple(job.tags),
        )
        for number, point in asked
    ]
