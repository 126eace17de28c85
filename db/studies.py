"""Tune jobs' Optuna studies, in storage kept apart from TensorQ's own tables: a database file of their own
beside a SQLite database, the ``optuna`` schema of a Postgres one (made by ``tensorq migrate``, by
``ensure_storage``). Optuna makes and owns its tables there; TensorQ's Alembic history never sees them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SCHEMA = "optuna"
# A trial's sampler draws its point from the search space: ``ml.tuning.suggest`` (handed in; db imports no ml).
Suggest = Callable[[Any], dict[str, Any]]

optuna.logging.set_verbosity(optuna.logging.WARNING)


def storage_url(database_url: str) -> str:
    """Where the studies of the database at ``database_url`` live."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "tensorq.sqlite3")
        return url.set(database=str(path.with_name(f"{path.stem}-optuna{path.suffix or '.sqlite3'}"))).render_as_string(
            hide_password=False
        )
    return url.update_query_dict({"options": f"-csearch_path={SCHEMA}"}).render_as_string(hide_password=False)


def ensure_storage(database_url: str) -> None:
    """Make the studies' storage: the Postgres schema, then Optuna's own tables."""
    if make_url(database_url).get_backend_name() != "sqlite":
        engine = create_engine(database_url)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        finally:
            engine.dispose()
    storage(database_url)


@functools.cache
def storage(database_url: str) -> optuna.storages.RDBStorage:
    """This process's storage of the studies (made at first use; one engine each)."""
    return optuna.storages.RDBStorage(storage_url(database_url))


def _sampler(kind: str, seed: int | None, grid: dict[str, list[Any]] | None) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return optuna.samplers.GridSampler(grid or {}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(kind: str) -> optuna.pruners.BasePruner:
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)


def create(database_url: str, name: str, direction: str) -> None:
    """Make the study ``name`` (its storage first, when missing)."""
    ensure_storage(database_url)
    goal = optuna.study.StudyDirection.MINIMIZE if direction == "minimize" else optuna.study.StudyDirection.MAXIMIZE
    optuna.create_study(storage=storage(database_url), study_name=name, direction=goal)


def ask(
    database_url: str,
    name: str,
    count: int,
    suggest: Suggest,
    *,
    sampler: str = "tpe",
    seed: int | None = None,
    grid: dict[str, list[Any]] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """``count`` new trials of the study: each one's number and the point ``suggest`` drew for it."""
    study = optuna.load_study(study_name=name, storage=storage(database_url))
    # A sampler is made anew each time: seeded by the trials made so far, so each draw differs.
    made = len(study.get_trials(deepcopy=False))
    study.sampler = _sampler(sampler, None if seed is None else seed + made, grid)
    asked = []
    for _ in range(count):
        trial = study.ask()
        asked.append((trial.number, suggest(trial)))
    return asked


def _trial(database_url: str, name: str, number: int, pruner: str) -> optuna.Trial:
    studies = storage(database_url)
    study = optuna.load_study(study_name=name, storage=studies, pruner=_pruner(pruner))
    trial_id = studies.get_trial_id_from_study_id_trial_number(studies.get_study_id_from_name(name), number)
    return optuna.Trial(study, trial_id)


def report(database_url: str, name: str, number: int, pruner: str, step: int, value: float) -> bool:
    """Report trial ``number``'s metric after epoch ``step``; whether its pruner says to stop it."""
    trial = _trial(database_url, name, number, pruner)
    trial.report(value, step)
    return trial.should_prune()


def tell(database_url: str, name: str, number: int, state: str, value: float | None = None) -> int:
    """Record how trial ``number`` ended (``complete`` with its value, ``pruned`` or ``failed``; a trial told
    already is left as told); how many of the study's trials have ended."""
    study = optuna.load_study(study_name=name, storage=storage(database_url))
    states = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}
    try:
        study.tell(
            number, value if state == "complete" else None, state=states.get(state, optuna.trial.TrialState.FAIL)
        )
    except (ValueError, RuntimeError):
        pass  # told already (a trial run again after its worker was lost)
    return sum(1 for trial in study.get_trials(deepcopy=False) if trial.state.is_finished())


def importances(database_url: str, name: str) -> dict[str, float]:
    """Each searched parameter's importance to the metric over the completed trials (empty below two)."""
    study = optuna.load_study(study_name=name, storage=storage(database_url))
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}
    try:
        return {key: round(float(value), 6) for key, value in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError):
        return {}
