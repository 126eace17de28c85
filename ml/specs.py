"""The typed job specs: the one place that says what a job may ask for, its ranges and its defaults.

The API validates submissions with these models and stores ``model_dump``; the worker reads the stored spec
back with the same model (``parse(TrainSpec, job.spec)``) and hands its typed fields to the TensorFlow core.
Importing this module does not import TensorFlow (only pydantic and the catalog of names).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ml.catalog import (
    ARCHITECTURES,
    BUILTIN_DATASETS,
    ENVIRONMENTS,
    EXPLAIN_METHODS,
    OPTIMIZERS,
    PER_ROW_METHODS,
    PREDICT_MODES,
    TASK_METRICS,
    TASKS,
)
from tensorq.core.errors import InvalidRequest, OutOfRange

# pydantic error types that mean "well-formed, but out of range" (OutOfRange); everything else is InvalidRequest.
RANGE_ERRORS = frozenset(
    {
        "params_out_of_range",
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "too_long",
        "too_short",
        "multiple_of",
    }
)

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")]
# A model reference: the model's id or name, then optionally ``:<version>`` or ``@<alias>`` (latest without).
ModelRef = Annotated[
    str,
    Field(
        min_length=1,
        max_length=300,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}(:[0-9]{1,9}|@[A-Za-z][A-Za-z0-9_-]{0,63})?$",
        description="a model id or name, then optionally :<version> or @<alias> (default: the latest version)",
    ),
]
Column = Annotated[str, Field(min_length=1, max_length=200)]
ClassId = Annotated[str, Field(pattern=r"^[0-9]{1,6}$")]
ClassWeight = Annotated[float, Field(gt=0.0, le=1e6)]
# "balanced", or class id -> weight; the discriminator keeps a bad weight's error to the mapping (OutOfRange).
ClassWeights = Annotated[
    Annotated[Literal["balanced"], Tag("name")] | Annotated[dict[ClassId, ClassWeight], Tag("mapping")],
    Discriminator(lambda value: "name" if isinstance(value, str) else "mapping"),
]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
# Sharding (issue 22): how many row ranges a predict or explain asks to be split into, each a child job; and the
# index of a child's shard in its parent, which the server sets.
Shards = Annotated[int, Field(ge=2, le=10_000, description="split the rows into this many child jobs, run apart")]
ShardIndex = Annotated[int, Field(ge=0, lt=10_000, description="set by the server: this shard's place in its parent")]
# A dataset reference: ``builtin:<name>`` (checked against the catalog) or a server-made dataset id.
DatasetRef = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^(builtin:[a-z_]{1,40}|[0-9a-fA-F-]{1,36})$")]
Id = Annotated[str, Field(min_length=1, max_length=200)] | int


def _known(what: str, value: str, names: tuple[str, ...]) -> str:
    """``value`` when it is one of ``names``; else an ``unknown_name`` error that lists them."""
    if value not in names:
        context = {"what": what, "value": value, "known": ", ".join(names)}
        raise PydanticCustomError("unknown_name", "unknown {what} '{value}'; known: {known}", context)
    return value


class Strict(BaseModel):
    """A schema that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid")


class EarlyStopping(Strict):
    """Stop when the monitored metric stops improving; the best weights are restored.

    A ``val_`` monitor watches the training figure of the same name when there is no validation data.
    """

    patience: int = Field(default=3, ge=1, le=1000)
    monitor: str = Field(default="val_loss", pattern=r"^(val_)?(loss|accuracy|rmse|reconstruction_loss|kl_loss)$")
    min_delta: float = Field(default=0.0, ge=0.0, le=1e9)


PositiveInt = Annotated[int, Field(strict=True, ge=1)]
Activation = Literal["relu", "gelu", "tanh", "elu", "selu", "swish", "sigmoid"]


class MlpParams(Strict):
    """``mlp``: Dense ``hidden`` layer widths, ``dropout`` after each, their ``activation``."""

    hidden: list[Annotated[int, Field(strict=True, ge=1, le=4096)]] = Field(
        default=[64, 32], min_length=1, max_length=32
    )
    dropout: float = Field(default=0.1, ge=0.0, le=0.9)
    activation: Activation = "relu"


class CnnParams(Strict):
    """``cnn``: Conv2D ``filters`` (square ``kernel_size``), then Dense ``dense`` and ``dropout``."""

    filters: list[Annotated[int, Field(strict=True, ge=1, le=1024)]] = Field(
        default=[32, 64, 64], min_length=1, max_length=16
    )
    dense: int = Field(default=64, strict=True, ge=1, le=8192)
    dropout: float = Field(default=0.0, ge=0.0, le=0.9)
    kernel_size: int = Field(default=3, strict=True, ge=1, le=11)


class RnnParams(Strict):
    """``rnn``: an embedding of the vectorised text, ``layers`` recurrent ``cell`` layers, an optional Dense."""

    cell: Literal["lstm", "gru"] = "lstm"
    units: int = Field(default=64, strict=True, ge=1, le=4096)
    layers: int = Field(default=1, strict=True, ge=1, le=8)
    bidirectional: bool = Field(default=False, strict=True)
    dropout: float = Field(default=0.0, ge=0.0, le=0.9)
    dense: int = Field(default=0, strict=True, ge=0, le=8192)
    max_tokens: int = Field(default=20_000, strict=True, ge=100, le=1_000_000)
    sequence_length: int = Field(default=64, strict=True, ge=1, le=4096)
    embedding_dim: int = Field(default=64, strict=True, ge=1, le=1024)


class VaeParams(Strict):
    """``vae``: a ``latent_dim`` code between ``hidden`` Dense layers, KL weight ``beta``."""

    latent_dim: int = Field(default=8, strict=True, ge=1, le=1024)
    hidden: list[Annotated[int, Field(strict=True, ge=1, le=8192)]] = Field(
        default=[128, 64], min_length=1, max_length=8
    )
    beta: float = Field(default=1.0, ge=0.0, le=100.0)
    activation: Literal["relu", "gelu", "tanh", "elu", "selu", "swish"] = "relu"


class RecommenderParams(Strict):
    """``recommender``: matrix factorisation with ``factors`` per user and item, ``l2`` and ``init_scale``."""

    factors: int = Field(default=16, strict=True, ge=1, le=1024)
    l2: float = Field(default=1e-4, ge=0.0, le=1.0)
    init_scale: float = Field(default=0.05, ge=1e-4, le=1.0)


class AudioCnnParams(Strict):
    """``audio_cnn``: clips at ``sample_rate`` Hz in windows of ``clip_seconds``, as log-mel spectrograms
    (``n_mels`` bands, frames of ``frame_ms`` every ``hop_ms``), then Conv2D ``filters``, Dense ``dense``."""

    sample_rate: int = Field(default=16_000, strict=True, ge=4_000, le=48_000)
    clip_seconds: float = Field(default=1.0, gt=0.05, le=30.0)
    n_mels: int = Field(default=40, strict=True, ge=8, le=256)
    frame_ms: float = Field(default=25.0, ge=5.0, le=200.0)
    hop_ms: float = Field(default=10.0, ge=2.0, le=100.0)
    filters: list[Annotated[int, Field(strict=True, ge=1, le=512)]] = Field(
        default=[16, 32, 64], min_length=1, max_length=8
    )
    dense: int = Field(default=64, strict=True, ge=1, le=4096)
    dropout: float = Field(default=0.25, ge=0.0, le=0.9)

    @property
    def clip_samples(self) -> int:
        """The window's length in samples."""
        return round(self.sample_rate * self.clip_seconds)


class PolicyParams(Strict):
    """``policy``: an agent's policy network (Dense ``hidden`` layers, their ``activation``, then one logit per
    action) trained by PPO: ``num_envs`` environment copies step together, ``steps_per_iteration`` steps of
    them make one iteration's rollout, learned from in ``update_epochs`` passes of ``minibatches`` minibatches
    (clip ``clip_ratio``, discount ``gamma``, GAE ``gae_lambda``, loss weights ``value_coef``, ``entropy_coef``)."""

    hidden: list[Annotated[int, Field(strict=True, ge=1, le=1024)]] = Field(
        default=[64, 64], min_length=1, max_length=8
    )
    activation: Activation = "tanh"
    num_envs: int = Field(default=8, strict=True, ge=1, le=64)
    steps_per_iteration: int = Field(default=1024, strict=True, ge=16, le=65_536)
    update_epochs: int = Field(default=4, strict=True, ge=1, le=100)
    minibatches: int = Field(default=4, strict=True, ge=1, le=256)
    gamma: float = Field(default=0.99, ge=0.0, le=1.0)
    gae_lambda: float = Field(default=0.95, ge=0.0, le=1.0)
    clip_ratio: float = Field(default=0.2, gt=0.0, le=1.0)
    value_coef: float = Field(default=0.5, ge=0.0, le=10.0)
    entropy_coef: float = Field(default=0.01, ge=0.0, le=1.0)


# Each architecture's params: what its builder in ml/architectures reads, with the same ranges and defaults.
ARCHITECTURE_PARAMS: dict[str, type[Strict]] = {
    "mlp": MlpParams,
    "cnn": CnnParams,
    "rnn": RnnParams,
    "vae": VaeParams,
    "recommender": RecommenderParams,
    "audio_cnn": AudioCnnParams,
    "policy": PolicyParams,
}


def architecture_params(architecture: str, params: Any) -> Strict:
    """``params`` as the architecture's params model (a model already is one); unknown params are an
    InvalidRequest listing the allowed ones, a known param with a bad value an OutOfRange naming it."""
    schema = ARCHITECTURE_PARAMS[architecture]
    if isinstance(params, schema):
        return params
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidRequest("params must be an object", details={"field": "params"})
    try:
        return schema.model_validate(params)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        allowed = list(schema.model_fields)
        unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if unknown:
            raise InvalidRequest(
                f"unknown params {unknown}; allowed: {allowed}", details={"unknown": unknown, "allowed": allowed}
            ) from None
        field = f"params.{errors[0]['loc'][0]}"
        raise OutOfRange(
            f"{field}: {errors[0]['msg']}", details={"field": field, "errors": error_details(exc, "params")}
        ) from None


def _params_of(architecture: str, params: dict[str, Any]) -> Strict:
    """``params`` checked against the architecture's params model; one error naming each bad param."""
    try:
        return ARCHITECTURE_PARAMS[architecture].model_validate(params)
    except ValidationError as exc:
        details = error_details(exc, "params")
        # Unknown params are a 400 that lists the allowed ones; a known param with a bad value a 422.
        kind = "params_invalid" if any(d["type"] == "extra_forbidden" for d in details) else "params_out_of_range"
        listed = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        allowed = ", ".join(ARCHITECTURE_PARAMS[architecture].model_fields)
        raise PydanticCustomError(
            kind,
            "{listed} (params of {architecture}: {allowed})",
            {"listed": listed, "architecture": architecture, "allowed": allowed},
        ) from None


class TrainOptions(Strict):
    """How to train: the architecture and its hyperparameters (what ``ml.training.train`` takes)."""

    architecture: str = Field(json_schema_extra={"enum": list(ARCHITECTURES)})
    params: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(default=10, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1, le=65_536)
    validation_split: float = Field(default=0.2, ge=0.0, lt=0.9)
    test_split: float = Field(default=0.0, ge=0.0, lt=0.9)
    learning_rate: float = Field(default=1e-3, gt=0.0, le=10.0)
    optimizer: str = Field(default="adam", json_schema_extra={"enum": list(OPTIMIZERS)})
    early_stopping: EarlyStopping | None = None
    seed: Seed | None = None
    class_weight: ClassWeights | None = None

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        return _known("architecture", value, ARCHITECTURES)

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        return _known("optimizer", value, OPTIMIZERS)

    @model_validator(mode="after")
    def _params_of_the_architecture(self) -> TrainOptions:
        _params_of(self.architecture, self.params)
        return self

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> TrainOptions:
        if self.validation_split + self.test_split >= 0.9:
            raise ValueError("validation_split + test_split must leave at least 10% of the rows for training")
        return self

    @model_validator(mode="after")
    def _monitor_of_the_task(self) -> TrainOptions:
        if self.early_stopping is not None:
            figures = TASK_METRICS[TASKS[self.architecture]]
            allowed = (*figures, *(f"val_{name}" for name in figures))
            if self.early_stopping.monitor not in allowed:
                raise ValueError(f"early_stopping.monitor must be one of {', '.join(allowed)}")
        return self

    @property
    def task(self) -> str:
        """What the architecture learns: "classify", "autoencode" or "recommend"."""
        return TASKS[self.architecture]

    @property
    def takes_audio(self) -> bool:
        """Whether the architecture learns from audio clips (its params then say their rate and window)."""
        return ARCHITECTURE_DATA.get(self.architecture) == ("audio",)

    @property
    def typed_params(self) -> Strict:
        """``params`` as the architecture's params model, defaults filled in."""
        return architecture_params(self.architecture, self.params)


# What each architecture can learn from: "image" (an .npz of (N, H, W[, C]) or builtin:digits), "tabular"
# (a CSV, an .npz of (N, F) or another builtin), "text" (a .jsonl); the recommender reads a CSV's columns.
ARCHITECTURE_DATA: dict[str, tuple[str, ...]] = {
    "mlp": ("tabular", "image"),
    "cnn": ("image",),
    "rnn": ("text", "image"),
    "vae": ("tabular", "image"),
    "recommender": ("tabular",),
    "audio_cnn": ("audio",),
    "policy": (),
}


def data_kind(fmt: str, x_shape: list[int] | None) -> str:
    """The kind of data in a dataset of format ``fmt`` whose ``x`` is shaped ``x_shape`` (npz only)."""
    if fmt == "jsonl":
        return "text"
    if fmt == "audio":
        return "audio"
    if fmt == "npz" and x_shape is not None and len(x_shape) >= 3:
        return "image"
    return "tabular"


class TrialRef(Strict):
    """Set by the server on a tune's trial: its study, its number, and what it reports each epoch."""

    study: str = Field(min_length=1, max_length=200)
    number: int = Field(ge=0)
    metric: str = Field(min_length=1, max_length=100)
    pruner: Literal["median", "hyperband", "none"] = "median"
    n_trials: int = Field(ge=1)
    params: dict[str, Any] = Field(default_factory=dict, description="the point of the search space it trains")


class Environment(Strict):
    """Where an agent (architecture ``policy``) learns, and its budgets: training stops at the first of
    ``max_steps`` environment steps, ``max_episodes`` episodes or ``max_seconds`` of wall time, or once the
    greedy policy's mean return over ``eval_episodes`` episodes reaches ``target_return``; the final policy is
    then scored over ``eval_episodes`` episodes."""

    name: str = Field(json_schema_extra={"enum": list(ENVIRONMENTS)})
    max_steps: int = Field(default=200_000, strict=True, ge=16, le=5_000_000)
    max_episodes: int = Field(default=20_000, strict=True, ge=1, le=1_000_000)
    max_seconds: float = Field(default=600.0, gt=0.0, le=24 * 3600.0)
    target_return: float | None = Field(default=None, ge=-1e9, le=1e9)
    eval_episodes: int = Field(default=100, strict=True, ge=1, le=1000)

    @field_validator("name")
    @classmethod
    def _known_environment(cls, value: str) -> str:
        return _known("environment", value, ENVIRONMENTS)


# The train options that go with a dataset, refused for a policy (it plays in an environment).
DATASET_OPTIONS = (
    "early_stopping",
    "class_weight",
    "label_column",
    "categorical_columns",
    "ignore_columns",
    "user_column",
    "item_column",
    "rating_column",
)


class TrainSpec(TrainOptions):
    """A training job: which architecture, on which data (or, for an agent, in which environment), for how
    long, and the model's name."""

    dataset: DatasetRef | None = None
    environment: Environment | None = Field(default=None, description="an agent's environment and budgets")
    register_as: Name | None = Field(default=None, description="the model to add this version to (by name)")
    model_name: Name | None = Field(default=None, description="the older spelling of register_as")
    label_column: str | None = Field(default=None, min_length=1, max_length=200)
    categorical_columns: list[Column] | None = Field(
        default=None,
        max_length=10_000,
        description="a table's columns to treat as categories even when their cells are numbers",
    )
    ignore_columns: list[Column] | None = Field(
        default=None, max_length=10_000, description="a table's columns to leave out of the features"
    )
    user_column: Column | None = None
    item_column: Column | None = None
    rating_column: Column | None = None
    trial: TrialRef | None = None

    @field_validator("dataset")
    @classmethod
    def _known_builtin(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("builtin:"):
            _known("builtin dataset", value.removeprefix("builtin:"), BUILTIN_DATASETS)
        return value

    @model_validator(mode="after")
    def _data_or_environment(self) -> TrainSpec:
        if self.task == "reinforce":
            if self.environment is None or self.dataset is not None:
                raise ValueError("a policy trains in an 'environment', not on a 'dataset'")
            given = [name for name in DATASET_OPTIONS if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} are for training on a dataset, not a policy")
        elif self.dataset is None or self.environment is not None:
            raise ValueError(f"{self.architecture} trains on a 'dataset'; 'environment' is for a policy")
        return self

    @model_validator(mode="after")
    def _one_model_name(self) -> TrainSpec:
        if self.register_as and self.model_name and self.register_as != self.model_name:
            raise ValueError("register_as and model_name name different models; give one of them")
        return self

    @property
    def builtin(self) -> str | None:
        """The builtin dataset's name when ``dataset`` is ``builtin:<name>``, else None."""
        dataset = self.dataset or ""
        return dataset.removeprefix("builtin:") if dataset.startswith("builtin:") else None

    @property
    def source(self) -> str:
        """What the model learns from: the dataset reference, or an agent's environment name."""
        return self.environment.name if self.environment is not None else str(self.dataset)

    def check_data(self, kind: str) -> None:
        """Raise InvalidRequest when the architecture cannot learn from data of ``kind`` (see ``DATA_KINDS``)."""
        allowed = ARCHITECTURE_DATA[self.architecture]
        if kind not in allowed:
            raise InvalidRequest(
                f"{self.architecture} cannot train on {kind} data; it takes {' or '.join(allowed)} data",
                code="data_does_not_fit",
                details={"architecture": self.architecture, "data": kind, "accepted": list(allowed)},
            )

    def name(self) -> str:
        """The registered model's name: ``register_as``, else ``model_name``, else ``<architecture>-<dataset>``."""
        return self.register_as or self.model_name or f"{self.architecture}-{self.source.removeprefix('builtin:')}"


# The predict fields each kind of model does not take ("regress" is an imported model without classes).
TASK_FOREIGN_OPTIONS: dict[str, tuple[str, ...]] = {
    "recommend": ("mode", "n", "dataset", "label_column"),
    "autoencode": ("user", "k", "label_column"),
    "classify": ("mode", "n", "user", "k"),
    "regress": ("mode", "n", "user", "k"),
}


class PredictSpec(Strict):
    """Inference on a registered model: inline inputs or a dataset; a recommender's top ``k`` items for a
    ``user``; a vae's ``mode`` (``sample`` takes no inputs, only ``n`` and ``seed``)."""

    model: ModelRef
    inputs: list[Any] | None = Field(default=None, min_length=1)
    dataset: DatasetRef | None = None
    mode: str | None = Field(default=None, json_schema_extra={"enum": [*PREDICT_MODES, None]})
    n: int | None = Field(default=None, ge=1, le=10_000)
    seed: Seed | None = None
    user: Id | None = None
    k: int | None = Field(default=None, ge=1, le=1000)
    label_column: Column | None = Field(
        default=None, description="with a CSV dataset: score the predictions against this column"
    )
    shards: Shards | None = None
    shard: ShardIndex | None = None
    row_range: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=1)]] | None = Field(
        default=None, description="with a dataset: only its rows start:stop (a shard's rows)"
    )

    @field_validator("dataset")
    @classmethod
    def _known_builtin(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("builtin:"):
            _known("builtin dataset", value.removeprefix("builtin:"), BUILTIN_DATASETS)
        return value

    def refuse_options_of_other_tasks(self, task: str) -> None:
        """Raise InvalidRequest for fields that do not apply to a ``task`` model (e.g. ``user`` on a classifier)."""
        foreign = TASK_FOREIGN_OPTIONS.get(task, TASK_FOREIGN_OPTIONS["classify"])
        given = [name for name in foreign if getattr(self, name) is not None]
        if given:
            raise InvalidRequest(f"{', '.join(given)} do not apply to a {task} model", details={"fields": given})

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str | None) -> str | None:
        return value if value is None else _known("mode", value, PREDICT_MODES)

    @model_validator(mode="after")
    def _one_source(self) -> PredictSpec:
        sources = [name for name in ("inputs", "dataset", "user") if getattr(self, name) is not None]
        if self.mode == "sample":
            if sources:
                raise ValueError("mode 'sample' takes no inputs, dataset or user, only n and seed")
        elif len(sources) != 1:
            raise ValueError("give exactly one of 'inputs', 'dataset' or 'user'")
        if self.n is not None and self.mode != "sample":
            raise ValueError("'n' goes with mode 'sample'")
        if self.k is not None and self.user is None:
            raise ValueError("'k' goes with 'user'")
        if self.label_column is not None and self.dataset is None:
            raise ValueError("'label_column' goes with 'dataset'")
        if self.row_range is not None and (self.dataset is None or self.row_range[0] >= self.row_range[1]):
            raise ValueError("'row_range' goes with 'dataset', as [start, stop] with start < stop")
        if self.shards is not None and self.inputs is None and self.dataset is None:
            raise ValueError("'shards' splits 'inputs' or a 'dataset'")
        return self


TABLE_FORMATS = ("csv", "parquet")


def named_features(version: Any) -> list[str] | None:
    """The feature columns a version reads a table by (name, in order): those of a version trained on a
    table (CSV or Parquet)."""
    dataset = (getattr(version, "lineage", None) or {}).get("dataset") or {}
    features = version.signature.get("feature_names")
    return list(features) if dataset.get("format") in TABLE_FORMATS and features else None


class ExplainSpec(Strict):
    """Attributions for inputs of a registered classifier: ``steps`` (integrated_gradients), ``samples`` and
    ``noise`` (smoothgrad), ``window`` and ``stride`` (occlusion; ``window`` also sizes lime's patches),
    ``nsamples`` (kernel_shap, gradient_shap, lime), ``background`` rows (SHAP), ``seed`` (random methods)."""

    model: ModelRef
    inputs: list[Any] = Field(min_length=1, max_length=1000)
    method: str = Field(default="integrated_gradients", json_schema_extra={"enum": list(EXPLAIN_METHODS)})
    target: int | None = Field(default=None, ge=0, le=1_000_000)
    steps: int = Field(default=64, ge=1, le=1024)
    baseline: Literal["zeros", "mean"] | list[Any] = "zeros"
    samples: int = Field(default=32, ge=1, le=1024)
    noise: float = Field(default=0.15, ge=0.0, le=1.0)
    window: int | None = Field(default=None, ge=1, le=4096)
    stride: int | None = Field(default=None, ge=1, le=4096)
    nsamples: int | None = Field(default=None, ge=1, le=100_000)
    seed: Seed = 0
    background: list[Any] | None = Field(default=None, min_length=1, max_length=1000)
    shards: Shards | None = None
    shard: ShardIndex | None = None

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        return _known("method", value, EXPLAIN_METHODS)

    @model_validator(mode="after")
    def _shards_explain_rows_alone(self) -> ExplainSpec:
        if self.shards is not None and (self.method not in PER_ROW_METHODS or self.baseline == "mean"):
            raise ValueError(
                f"'shards' needs a method that explains each row alone ({', '.join(PER_ROW_METHODS)}) and a "
                "baseline other than 'mean'"
            )
        return self


class ImportSpec(Strict):
    """A bring-your-own model import (made by ``POST /v1/models``, not submitted): the staged upload's id."""

    upload: str = Field(min_length=1, max_length=100)
    model_name: Name
    size_bytes: int | None = Field(default=None, ge=0)


class ModelUpload(Strict):
    """The form fields of ``POST /v1/models`` besides the file."""

    name: Name


# The spec of each job type; ``POST /v1/jobs`` takes the first three, ``POST /v1/models`` makes imports.
SPECS: dict[str, type[Strict]] = {"train": TrainSpec, "predict": PredictSpec, "explain": ExplainSpec}
JOB_SPECS: dict[str, type[Strict]] = {**SPECS, "import": ImportSpec}


def error_details(exc: ValidationError, where: str = "") -> list[dict[str, Any]]:
    """Each failed check as ``{"field", "message", "type"}``, fields prefixed with ``where``."""
    details = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"])
        if where:
            field = f"{where}.{field}" if field else where
        details.append({"field": field, "message": err["msg"], "type": err["type"]})
    return details


M = TypeVar("M", bound=BaseModel)


def parse(schema: type[M], data: Any, *, where: str = "") -> M:
    """Validate ``data`` against ``schema``: OutOfRange when only ranges are off, InvalidRequest otherwise."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        details = error_details(exc, where)
        if all(item["type"] in RANGE_ERRORS for item in details):
            raise OutOfRange("a value is out of range", details=details) from None
        raise InvalidRequest("the request does not match the schema", details=details) from None
