"""A tune job's spec: a typed search space over a train spec's learning rate, batch size, epochs and its
architecture's params; each sampled point is checked against ``TrainSpec`` like any submitted spec."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from ml.specs import Name, Seed, Strict, TrainSpec
from tensorq.core.errors import OutOfRange

# The train spec's own fields a search may vary; an architecture's params are named "params.<name>".
TOP_LEVEL = ("learning_rate", "batch_size", "epochs", "optimizer")


class SearchParam(Strict):
    """One dimension: ``int`` or ``float`` from ``low`` to ``high`` (``log`` scale on request), or one of
    ``choices``."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Annotated[Any, Field()]] | None = Field(default=None, min_length=1, max_length=100)


class TuneSpec(Strict):
    """A hyperparameter search over a train spec: ``n_trials`` trainings, ``parallelism`` at a time, each a
    child train job that reports ``metric`` every epoch and stops when the ``pruner`` says so."""

    train: dict[str, Any]
    search_space: dict[str, SearchParam] = Field(min_length=1, max_length=50)
    n_trials: int = Field(ge=1, le=10_000)
    parallelism: int = Field(default=2, ge=1, le=1000)
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    metric: str = Field(default="val_loss", min_length=1, max_length=100)
    direction: Literal["minimize", "maximize"] | None = None
    register_as: Name | None = None
    seed: Seed | None = None

    @property
    def goal(self) -> str:
        """``minimize`` or ``maximize``: the direction given, else by the metric (a loss or error is minimized)."""
        if self.direction is not None:
            return self.direction
        return "minimize" if any(word in self.metric for word in ("loss", "error", "rmse", "mae")) else "maximize"


def check_search(spec: TuneSpec) -> TrainSpec:
    """The base train spec, checked; OutOfRange (422) naming the first search parameter that the architecture
    does not have, or whose range (each end, each choice) a train spec refuses."""
    base = _train_spec(spec.train, "spec.train")
    for name, param in spec.search_space.items():
        known = TOP_LEVEL if not name.startswith("params.") else (name,)
        if name not in known:
            raise OutOfRange(
                f"search parameter '{name}' is none of {', '.join(TOP_LEVEL)} or params.<name>",
                code="unknown_search_param",
                details={"param": name, "known": [*TOP_LEVEL, "params.<name>"]},
            )
        for value in _ends(name, param):
            _train_spec(with_value(base.model_dump(mode="json", exclude_none=True), name, value), name)
    return base


def _ends(name: str, param: SearchParam) -> list[Any]:
    """The values that bound a dimension: its choices, or its low and high ends."""
    if param.type == "categorical":
        if not param.choices:
            raise OutOfRange(
                f"search parameter '{name}' needs choices", code="search_range_refused", details={"param": name}
            )
        return list(param.choices)
    if param.low is None or param.high is None or param.low >= param.high or (param.log and param.low <= 0):
        raise OutOfRange(
            f"search parameter '{name}' needs low < high (and low > 0 on a log scale)",
            code="search_range_refused",
            details={"param": name},
        )
    if param.type == "int":
        return [int(param.low), int(param.high)]
    return [param.low, param.high]


def with_value(spec: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """A copy of a train spec with the search parameter ``name`` set to ``value``."""
    if name.startswith("params."):
        return {**spec, "params": {**(spec.get("params") or {}), name.removeprefix("params."): value}}
    return {**spec, name: value}


def _train_spec(data: dict[str, Any], param: str) -> TrainSpec:
    try:
        return TrainSpec.model_validate(data)
    except (ValidationError, ValueError) as exc:
        raise OutOfRange(
            f"a train spec refuses search parameter '{param}' at this value: {exc}".split("\n")[0],
            code="search_range_refused",
            details={"param": param},
        ) from None


def suggest(trial: Any, space: dict[str, SearchParam]) -> dict[str, Any]:
    """The point an Optuna ``trial`` samples from ``space`` (name -> value)."""
    point: dict[str, Any] = {}
    for name, param in space.items():
        if param.type == "categorical":
            point[name] = trial.suggest_categorical(name, param.choices)
        elif param.type == "int":
            point[name] = trial.suggest_int(name, int(param.low or 0), int(param.high or 0), log=param.log)
        else:
            point[name] = trial.suggest_float(name, float(param.low or 0), float(param.high or 0), log=param.log)
    return point


def model_name(spec: TuneSpec) -> str:
    """The model the best trial is registered under: ``register_as``, else the train spec's own name."""
    return spec.register_as or TrainSpec.model_validate(spec.train).name()


def trial_spec(spec: TuneSpec, study: str, number: int, point: dict[str, Any]) -> dict[str, Any]:
    """The train spec of trial ``number``: the tune's train spec at ``point``, its model registered under
    ``<model>-trials``, and what the trial reports to its study (``TrialRef``)."""
    train = dict(spec.train)
    for name, value in point.items():
        train = with_value(train, name, value)
    train.pop("model_name", None)
    train["register_as"] = f"{model_name(spec)}-trials"[:200]
    ref = {"study": study, "number": number, "metric": spec.metric, "pruner": spec.pruner, "n_trials": spec.n_trials}
    train["trial"] = {**ref, "params": point}
    return train


def grid_of(spec: TuneSpec) -> dict[str, list[Any]] | None:
    """The grid sampler's values per dimension (choices, or every int from low to high); None unless the
    sampler is ``grid``. OutOfRange (422) for a float range, which has no grid."""
    if spec.sampler != "grid":
        return None
    grid: dict[str, list[Any]] = {}
    for name, param in spec.search_space.items():
        if param.type == "categorical":
            grid[name] = list(param.choices or [])
        elif param.type == "int":
            grid[name] = list(range(int(param.low or 0), int(param.high or 0) + 1))
        else:
            raise OutOfRange(
                f"the grid sampler takes choices or int ranges, not the float range of '{name}'",
                code="search_range_refused",
                details={"param": name},
            )
    return grid
