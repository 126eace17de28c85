"""Checks of a spec against the tenant's datasets and models, made before the job is queued."""

from __future__ import annotations

from typing import Any

from api.services import principal, services
from db.records import DatasetRecord, ModelVersionRecord
from ml import audio, records, tabular
from ml.budget import check_memory, check_params, train_estimate
from ml.catalog import AUDIO_BUILTINS, BUILTIN_SHAPES, ENVIRONMENT_FEATURES
from ml.specs import TABLE_FORMATS, ExplainSpec, PolicyParams, PredictSpec, TrainSpec, data_kind, named_features
from ml.validation import batch_shape
from tensorq.core.errors import InvalidRequest, NotFound, OutOfRange


def check_references(tenant_id: str, spec: Any, versions: dict[str, ModelVersionRecord] | None = None) -> Any:
    """Refuse before queueing a spec whose dataset, model or inputs cannot run (``versions`` caches the
    models resolved across the jobs of one batch); the spec to queue: ``spec`` itself, or a copy whose
    records are rows in the table model's column order (``ml.records``), the one form the worker reads."""
    dataset = getattr(spec, "dataset", None)
    record = _dataset_record(tenant_id, dataset) if dataset and not dataset.startswith("builtin:") else None
    if isinstance(spec, TrainSpec) and spec.environment is not None:
        _check_policy_size(spec)
    elif isinstance(spec, TrainSpec):
        _check_training_data(spec, record)
        _check_model_size(spec, record)
    if isinstance(spec, PredictSpec | ExplainSpec):
        return _check_model_inputs(tenant_id, spec, record, versions)
    return spec


def _dataset_record(tenant_id: str, dataset: str) -> DatasetRecord:
    """The tenant's dataset; a missing one is an InvalidRequest ``unknown_dataset``."""
    try:
        return services().db.datasets.get(tenant_id, dataset)
    except NotFound:
        raise InvalidRequest(f"dataset {dataset} not found", code="unknown_dataset") from None


def _check_model_inputs(
    tenant_id: str,
    spec: PredictSpec | ExplainSpec,
    record: DatasetRecord | None,
    versions: dict[str, ModelVersionRecord] | None,
) -> PredictSpec | ExplainSpec:
    """The tenant's model exists, takes the spec's options and table, and inline inputs (an explain baseline
    and background too) have its input shape; the spec with its records made rows."""
    version = _version(tenant_id, spec.model, versions)
    if isinstance(spec, PredictSpec):
        spec.refuse_options_of_other_tasks(version.interface.task)
        _check_table(spec, record, version)
    if version.interface.kind == "audio":
        _check_clips(spec, version)
        return spec
    spec = _as_rows(spec, version)
    columns = tabular.column_reports(version.signature)
    if columns:  # a table model: inline rows of cells, numbers where it reads numbers
        _check_cells(spec, columns)
        return spec
    shape = version.signature.get("input_shape")
    if shape is None:
        return spec
    if spec.inputs is not None:
        rows = batch_shape(spec.inputs, shape)[0]
        if isinstance(spec, PredictSpec) and rows > 100_000:
            raise OutOfRange("at most 100000 inline input rows; upload a dataset instead")
    if isinstance(spec, ExplainSpec) and isinstance(spec.baseline, list):
        batch_shape([spec.baseline], shape)
    if isinstance(spec, ExplainSpec) and spec.background is not None:
        batch_shape(spec.background, shape)
    return spec


def _version(tenant_id: str, ref: str, versions: dict[str, ModelVersionRecord] | None) -> ModelVersionRecord:
    """The tenant's model version ``ref`` (from ``versions`` when there, and kept in it); ``unknown_model``."""
    try:
        version = versions.get(ref) if versions is not None else None
        version = version or services().db.models.resolve(tenant_id, ref)
    except NotFound:
        raise InvalidRequest(f"model {ref} not found", code="unknown_model") from None
    if versions is not None:
        versions[ref] = version
    return version


def _check_clips(spec: PredictSpec | ExplainSpec, version: ModelVersionRecord) -> None:
    """An audio model's inline clips (WAV in base64, or samples with their rate) are well formed and fit its
    window (its input's samples at its rate)."""
    if spec.inputs is not None:
        rate = int(version.signature.get("sample_rate") or 16_000)
        samples = (version.signature.get("input_shape") or [rate])[0]
        audio.check_inline(spec.inputs, rate, samples / rate)
    if isinstance(spec, ExplainSpec) and (spec.baseline != "zeros" or spec.background is not None):
        raise InvalidRequest(
            "an audio model is explained against each clip's silence: no baseline or background to give",
            details={"field": "baseline" if spec.background is None else "background"},
        )


def _as_rows(spec: PredictSpec | ExplainSpec, version: ModelVersionRecord) -> PredictSpec | ExplainSpec:
    """``spec`` with the records of its inline inputs and explain background made rows of cells in the order of
    the model's feature columns; refused for a model that has no column names (not trained on a table)."""
    given: dict[str, list[Any]] = {}
    for name in ("inputs", "background"):
        rows = getattr(spec, name, None)
        if records.has_records(rows):
            given[name] = rows
    if not given:
        return spec
    reports = tabular.column_reports(version.signature)
    names = [str(c["name"]) for c in reports] if reports else named_features(version)
    if not names:
        raise records.not_a_table_model(next(iter(given)))
    return spec.model_copy(update={name: records.as_rows(rows, names, name) for name, rows in given.items()})


def _check_cells(spec: PredictSpec | ExplainSpec, columns: list[dict[str, Any]]) -> None:
    """Inline rows (and an explain baseline row and background rows) as cells a table model takes."""
    if spec.inputs is not None:
        rows = len(tabular.row_cells(spec.inputs, columns))
        if isinstance(spec, PredictSpec) and rows > 100_000:
            raise OutOfRange("at most 100000 inline input rows; upload a dataset instead")
    if isinstance(spec, ExplainSpec) and isinstance(spec.baseline, list):
        tabular.row_cells([spec.baseline], columns)
    if isinstance(spec, ExplainSpec) and spec.background is not None:
        tabular.row_cells(spec.background, columns)


def _check_model_size(spec: TrainSpec, record: DatasetRecord | None) -> None:
    """Refuse a train spec whose model would exceed the tenant's ``max_model_params`` (422 ``model_too_large``)
    or whose training would need more memory than its ``max_job_memory_mb`` (422 ``memory_budget_exceeded``)."""
    if spec.takes_audio:
        shape: tuple[int, ...] = (spec.typed_params.clip_samples,)  # type: ignore[attr-defined]
    elif record is None:
        shape = BUILTIN_SHAPES[spec.builtin or ""]
    elif record.format == "npz":
        shape = tuple(record.info.get("x_shape", [0, 1])[1:])
    elif record.format == "jsonl":
        shape = ()
    elif record.schema is not None and spec.task != "recommend":
        features = _table_features(spec, record)
        mixed = tabular.is_mixed(features) or bool(spec.categorical_columns)
        shape = (tabular.encoded_width(features) if mixed else len(features),)
    else:
        shape = (max(len(record.info.get("columns", [])) - 1, 1),)
    settings, tenant = services().settings, principal().tenant_name
    estimate = train_estimate(spec.architecture, spec.typed_params, shape)
    what = f"this {spec.architecture}"
    check_params(estimate.params, settings.quota(tenant, "max_model_params"), what)
    check_memory(estimate.train_bytes(spec.batch_size, spec.optimizer), settings.memory_budget_mb(tenant), what)


def _check_policy_size(spec: TrainSpec) -> None:
    """Refuse a policy (with its critic) over the tenant's ``max_model_params``, or whose PPO minibatch steps
    need more memory than its ``max_job_memory_mb`` (422 ``model_too_large``, ``memory_budget_exceeded``)."""
    assert spec.environment is not None
    params = spec.typed_params
    assert isinstance(params, PolicyParams)
    settings, tenant = services().settings, principal().tenant_name
    estimate = train_estimate("policy", params, (len(ENVIRONMENT_FEATURES[spec.environment.name]),))
    minibatch = max(params.steps_per_iteration // params.minibatches, 1)
    check_params(estimate.params, settings.quota(tenant, "max_model_params"), "this policy")
    check_memory(estimate.train_bytes(minibatch, spec.optimizer), settings.memory_budget_mb(tenant), "this policy")


def _check_table(spec: PredictSpec, record: DatasetRecord | None, version: ModelVersionRecord) -> None:
    """Refuse a table to predict on that lacks the model's feature columns or the named label column, or whose
    column cannot feed the model (cells that are not numbers, or missing cells for a model that does not impute)."""
    features = named_features(version)
    if record is None or record.format not in TABLE_FORMATS or not features:
        return
    columns = record.info.get("columns") or []
    missing = [name for name in features if name not in columns]
    if missing:
        raise InvalidRequest(
            f"the dataset lacks the model's feature columns {', '.join(missing)}",
            code="missing_columns",
            details={"missing": missing, "features": features},
        )
    if spec.label_column and spec.label_column not in columns:
        raise InvalidRequest(f"label column '{spec.label_column}' is not in the dataset", details={"columns": columns})
    if record.schema is not None:
        tabular.check_predict_columns(record.schema, features, version.signature.get("columns"))


def _table_features(spec: TrainSpec, record: DatasetRecord) -> list[dict[str, Any]]:
    """The feature columns of a profiled table for this spec; ``unusable_column`` naming each one (or the
    label) a model cannot use, and why."""
    return tabular.check_columns(
        record.schema or [],
        spec.label_column,
        spec.categorical_columns or (),
        spec.ignore_columns or (),
        needs_numeric=spec.task == "autoencode",
    )


def _check_training_data(spec: TrainSpec, record: DatasetRecord | None) -> None:
    """Refuse training data the architecture cannot learn from, a table without its label column, or a table
    with a column no model can use (``ml.tabular.check_columns``)."""
    if record is None:
        builtin = spec.builtin or ""
        spec.check_data("audio" if builtin in AUDIO_BUILTINS else data_kind("npz", [0, *BUILTIN_SHAPES[builtin]]))
        return
    spec.check_data(data_kind(record.format, record.info.get("x_shape")))
    if record.format not in TABLE_FORMATS:
        if spec.categorical_columns or spec.ignore_columns:
            raise InvalidRequest("categorical_columns and ignore_columns go with a table (CSV or Parquet) dataset")
        return
    columns = record.info.get("columns")
    if spec.task == "classify" and not spec.label_column:
        what = "a CSV" if record.format == "csv" else "a Parquet"
        raise InvalidRequest(f"{what} dataset needs 'label_column'", details={"columns": columns})
    if spec.label_column and spec.label_column not in (columns or []):
        raise InvalidRequest(f"label column '{spec.label_column}' is not in the dataset", details={"columns": columns})
    if record.schema is not None and spec.task != "recommend":
        _table_features(spec, record)
