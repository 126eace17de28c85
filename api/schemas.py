"""Request schemas (pydantic): submissions and the job specs of DESIGN.md."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from ml.catalog import ARCHITECTURES, BUILTIN_DATASETS, EXPLAIN_METHODS, OPTIMIZERS, PREDICT_MODES
from tensorq.errors import InvalidRequest, OutOfRange

# pydantic error types that mean "well-formed, but out of range" (422); everything else is 400.
RANGE_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_long", "too_short", "multiple_of"}
)

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")]
ModelRef = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[0-9a-fA-F-]{1,36}(:[0-9]{1,9})?$")]
Column = Annotated[str, Field(min_length=1, max_length=200)]
ClassId = Annotated[str, Field(pattern=r"^[0-9]{1,6}$")]
ClassWeight = Annotated[float, Field(gt=0.0, le=1e6)]
# "balanced", or class id -> weight; the discriminator keeps a bad weight's error to the mapping (422, not 400).
ClassWeights = Annotated[
    Annotated[Literal["balanced"], Tag("name")] | Annotated[dict[ClassId, ClassWeight], Tag("mapping")],
    Discriminator(lambda value: "name" if isinstance(value, str) else "mapping"),
]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]
Id = Annotated[str, Field(min_length=1, max_length=200)] | int


class Strict(BaseModel):
    """A schema that rejects unknown fields."""

    model_config = ConfigDict(extra="forbid")


class EarlyStopping(Strict):
    """Stop when the monitored metric stops improving; the best weights are restored."""

    patience: int = Field(default=3, ge=1, le=1000)
    monitor: str = Field(default="val_loss", pattern=r"^(val_)?(loss|accuracy|rmse|reconstruction_loss|kl_loss)$")
    min_delta: float = Field(default=0.0, ge=0.0, le=1e9)


class TrainSpec(Strict):
    """A training job: which architecture, on which data, for how long."""

    architecture: str
    dataset: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(default=10, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1, le=65_536)
    validation_split: float = Field(default=0.2, ge=0.0, lt=0.9)
    test_split: float = Field(default=0.0, ge=0.0, lt=0.9)
    learning_rate: float = Field(default=1e-3, gt=0.0, le=10.0)
    optimizer: str = "adam"
    early_stopping: EarlyStopping | None = None
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    model_name: Name | None = None
    label_column: str | None = Field(default=None, min_length=1, max_length=200)
    class_weight: ClassWeights | None = None
    user_column: Column | None = None
    item_column: Column | None = None
    rating_column: Column | None = None

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{value}'; known: {', '.join(ARCHITECTURES)}")
        return value

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        if value not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{value}'; known: {', '.join(OPTIMIZERS)}")
        return value

    @field_validator("dataset")
    @classmethod
    def _known_builtin(cls, value: str) -> str:
        if value.startswith("builtin:") and value.removeprefix("builtin:") not in BUILTIN_DATASETS:
            raise ValueError(f"unknown builtin dataset '{value}'; known: {', '.join(BUILTIN_DATASETS)}")
        return value

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> TrainSpec:
        if self.validation_split + self.test_split >= 0.9:
            raise ValueError("validation_split + test_split must leave at least 10% of the rows for training")
        return self


class PredictSpec(Strict):
    """Inference on a registered model: inline inputs or a dataset; a recommender's top ``k`` items for a
    ``user``; a vae's ``mode`` (``sample`` takes no inputs, only ``n`` and ``seed``)."""

    model: ModelRef
    inputs: list[Any] | None = Field(default=None, min_length=1)
    dataset: str | None = Field(default=None, min_length=1, max_length=100)
    mode: str | None = None
    n: int | None = Field(default=None, ge=1, le=10_000)
    seed: Seed | None = None
    user: Id | None = None
    k: int | None = Field(default=None, ge=1, le=1000)

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str | None) -> str | None:
        if value is not None and value not in PREDICT_MODES:
            raise ValueError(f"unknown mode '{value}'; known: {', '.join(PREDICT_MODES)}")
        return value

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
        return self


class ExplainSpec(Strict):
    """Attributions for inputs of a registered classifier: ``steps`` (integrated_gradients), ``samples`` and
    ``noise`` (smoothgrad), ``window`` and ``stride`` (occlusion; ``window`` also sizes lime's patches),
    ``nsamples`` (kernel_shap, gradient_shap, lime), ``background`` rows (SHAP), ``seed`` (random methods)."""

    model: ModelRef
    inputs: list[Any] = Field(min_length=1, max_length=1000)
    method: str = "integrated_gradients"
    target: int | None = Field(default=None, ge=0)
    steps: int = Field(default=64, ge=1, le=1024)
    baseline: Literal["zeros", "mean"] | list[Any] = "zeros"
    samples: int = Field(default=32, ge=1, le=1024)
    noise: float = Field(default=0.15, ge=0.0, le=1.0)
    window: int | None = Field(default=None, ge=1, le=4096)
    stride: int | None = Field(default=None, ge=1, le=4096)
    nsamples: int | None = Field(default=None, ge=1, le=100_000)
    seed: Seed = 0
    background: list[Any] | None = Field(default=None, min_length=1, max_length=1000)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in EXPLAIN_METHODS:
            raise ValueError(f"unknown method '{value}'; known: {', '.join(EXPLAIN_METHODS)}")
        return value


class ModelUpload(Strict):
    """The form fields of ``POST /v1/models`` besides the file."""

    name: Name


SPECS: dict[str, type[Strict]] = {"train": TrainSpec, "predict": PredictSpec, "explain": ExplainSpec}


class JobSubmission(Strict):
    """The body of ``POST /v1/jobs``."""

    type: Literal["train", "predict", "explain"]
    spec: dict[str, Any]
    priority: int = Field(default=5, ge=0, le=9)
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    timeout_s: int | None = Field(default=None, ge=1, le=30 * 24 * 3600)


def _details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def parse(schema: type[BaseModel], data: Any, *, where: str = "") -> Any:
    """Validate ``data`` against ``schema``: 422 when only ranges are off, 400 otherwise."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        details = _details(exc)
        if where:
            for item in details:
                item["field"] = f"{where}.{item['field']}" if item["field"] else where
        if all(item["type"] in RANGE_ERRORS for item in details):
            raise OutOfRange("a value is out of range", details=details) from None
        raise InvalidRequest("the request does not match the schema", details=details) from None


def parse_submission(body: Any) -> tuple[JobSubmission, Strict]:
    """The submission and its typed spec."""
    submission: JobSubmission = parse(JobSubmission, body)
    spec = parse(SPECS[submission.type], submission.spec, where="spec")
    return submission, spec


def request_hash(body: Any) -> str:
    """A stable hash of a JSON body, for Idempotency-Key checks."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
