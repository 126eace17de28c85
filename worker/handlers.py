"""The plain functions behind each job type; they import the TensorFlow core lazily."""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from db.records import DatasetRecord, ModelVersionDraft, ModelVersionRecord
from ml.catalog import IMPORTED
from ml.model_archive import staging_key
from ml.specs import TABLE_FORMATS, ExplainSpec, ImportSpec, PredictSpec, TrainSpec, named_features, parse
from ml.tabular import column_reports
from tensorq.core.errors import InvalidRequest, NotFound, TensorQError
from worker.context import Handler, HandlerResult, JobContext
from worker.csv_cells import safe_cell
from worker.dataset_files import local_dataset
from worker.job_files import JobFiles, job_files
from worker.joblog import current_phase, set_phase
from worker.storage import model_file, store_for

if TYPE_CHECKING:
    import keras

    from ml.datasets import Dataset
    from ml.explainers.common import Explanation
    from ml.table_stream import TableStream
    from ml.training import TrainOutcome

log = logging.getLogger(__name__)
MAX_HEATMAPS = 100
CSV_CHUNK_ROWS = 4096  # rows of predictions.csv formatted at once


def _record(ctx: JobContext, ref: str) -> DatasetRecord:
    """The tenant's dataset record named by ``ref``."""
    try:
        return ctx.db.datasets.get(ctx.job.tenant_id, ref)
    except NotFound:
        raise InvalidRequest(f"dataset {ref} not found", code="unknown_dataset") from None


def _local(ctx: JobContext, record: DatasetRecord) -> contextlib.AbstractContextManager[Path]:
    """A local file of the dataset ``record`` (an upload's copy, or one gathered from a URL's shards)."""
    return local_dataset(ctx.settings, record.path, ctx.db.keys.tenant_name(ctx.job.tenant_id))


def _dataset(
    ctx: JobContext, ref: str, label_column: str | None = None, require_labels: bool = True, **table: Any
) -> Dataset:
    """Load a dataset spec value: ``builtin:<name>`` or one of the tenant's dataset ids (``table``: how a
    table's columns are read, see ``ml.datasets.load_table``)."""
    from ml import datasets

    if ref.startswith("builtin:"):
        return datasets.load_builtin(ref.removeprefix("builtin:"))
    record = _record(ctx, ref)
    with _local(ctx, record) as path:
        return datasets.load_file(path, record.format, label_column, require_labels=require_labels, **table)


def _training_data(ctx: JobContext, spec: TrainSpec) -> Dataset:
    """The training dataset as the architecture's task reads it (interactions for the recommender)."""
    from ml import datasets

    if spec.takes_audio:
        return _audio_data(ctx, spec)
    dataset = str(spec.dataset)
    if spec.task != "recommend":
        return _dataset(
            ctx,
            dataset,
            spec.label_column,
            require_labels=spec.task == "classify",
            categorical=spec.categorical_columns or (),
            ignore=spec.ignore_columns or (),
            numeric_only=spec.task == "autoencode",
        )
    if spec.builtin is not None:
        raise InvalidRequest("the recommender trains on an uploaded interactions CSV (user, item, rating columns)")
    record = _record(ctx, dataset)
    if record.format != "csv":
        raise InvalidRequest("the recommender trains on an interactions CSV (user, item, rating columns)")
    with _local(ctx, record) as path:
        return datasets.load_interactions(
            path, spec.user_column or "user", spec.item_column or "item", spec.rating_column or "rating"
        )


def _streams(ctx: JobContext, path: Path, fmt: str) -> bool:
    """Whether the table at ``path`` decodes to more than ``TENSORQ_STREAM_ABOVE_MB`` (then it is streamed)."""
    from ml.table_stream import decoded_bytes

    return decoded_bytes(path, fmt) > ctx.settings.stream_above_mb * 1024 * 1024


@contextlib.contextmanager
def _training_source(ctx: JobContext, spec: TrainSpec) -> Iterator[Dataset | TableStream]:
    """The training rows while the block runs: a classifier's large table (``_streams``) as a ``TableStream``
    over its local file, anything else loaded whole (``_training_data``)."""
    from ml.table_stream import TableStream

    if spec.takes_audio or spec.task != "classify" or spec.builtin is not None:
        yield _training_data(ctx, spec)
        return
    record = _record(ctx, str(spec.dataset))
    if record.format not in TABLE_FORMATS:
        yield _training_data(ctx, spec)
        return
    with _local(ctx, record) as path:
        if not _streams(ctx, path, record.format):
            yield _training_data(ctx, spec)
            return
        if not spec.label_column:
            raise InvalidRequest(f"a {record.format} dataset needs 'label_column'")
        categorical, ignore = tuple(spec.categorical_columns or ()), tuple(spec.ignore_columns or ())
        log.info("job %s streams its training table", ctx.job.id)
        yield TableStream(path, record.format, spec.label_column, categorical, ignore)


def _audio_data(ctx: JobContext, spec: TrainSpec) -> Dataset:
    """Audio clips for an audio architecture, at its params' rate and window: builtin:spoken_digits (made once
    into the settings' cache folder) or an uploaded zip of WAV clips."""
    from ml import datasets

    params = spec.typed_params
    rate, length = params.sample_rate, params.clip_samples  # type: ignore[attr-defined]
    if spec.builtin is not None:
        return datasets.load_spoken_digits(ctx.settings.cache_dir(), rate, length)
    record = _record(ctx, str(spec.dataset))
    if record.format != "audio":
        raise InvalidRequest(f"{spec.architecture} trains on a zip of WAV clips", code="data_does_not_fit")
    with _local(ctx, record) as local:
        return datasets.load_audio_zip(str(local), rate, length)


def train(ctx: JobContext) -> HandlerResult:
    """Train a model from the job's spec and register it as a new version; its checkpoints go to the artifact
    store after each epoch, so that an attempt on another host resumes from the last one."""
    spec = parse(TrainSpec, ctx.job.spec, where="spec")
    if spec.trial is not None:  # a tune's trial: reports to its study each epoch (worker/trials.py)
        from worker.trials import run_trial

        return run_trial(ctx, spec, functools.partial(_train, ctx, spec))
    return _train(ctx, spec, None)


def _train(ctx: JobContext, spec: TrainSpec, wrap: Callable[..., Callable[[dict], None]] | None) -> HandlerResult:
    """Train ``spec`` and hand back its result and model (``wrap`` turns the epoch callback into a trial's)."""
    from ml.checkpoint import CHECKPOINT_FILES
    from ml.training import train as fit

    with job_files(store_for(ctx.settings), ctx.job.id) as files:
        files.pull(CHECKPOINT_FILES)
        if spec.environment is not None:
            outcome = _train_agent(ctx, spec, files)
        else:
            set_phase("loading data")
            with _training_source(ctx, spec) as data:
                set_phase("building")
                on_epoch = functools.partial(_epoch_done, ctx, files, CHECKPOINT_FILES)
                outcome = fit(
                    spec,
                    data,
                    files.local(),
                    on_epoch=on_epoch if wrap is None else wrap(on_epoch),
                    should_stop=functools.partial(_batch_done, ctx),
                )
        set_phase("saving")
        [model_path] = files.publish(outcome.model_path.name)
    return HandlerResult(
        result=_train_result(outcome),
        model=ModelVersionDraft(
            model_name=spec.name(),
            path=model_path,
            architecture=spec.architecture,
            metrics=outcome.metrics,
            signature=outcome.signature,
            lineage=_lineage(ctx, spec),
        ),
    )


def _train_agent(ctx: JobContext, spec: TrainSpec, files: JobFiles) -> TrainOutcome:
    """Train an agent's policy in the spec's environment (``ml.reinforce``): each iteration is an epoch, its
    checkpoint (weights and counters) stored after it like a training's."""
    from ml.reinforce import CHECKPOINT_FILES, train_agent

    assert spec.environment is not None
    set_phase("building")
    files.pull(CHECKPOINT_FILES)
    return train_agent(
        spec,
        spec.environment,
        files.local(),
        on_epoch=functools.partial(_epoch_done, ctx, files, CHECKPOINT_FILES),
        should_stop=functools.partial(_batch_done, ctx),
    )


def _train_result(outcome: TrainOutcome) -> dict[str, Any]:
    """A training job's result: figures, history, epochs run and, for a table, what was done to each column
    (for an agent, why it stopped)."""
    result: dict[str, Any] = {"metrics": outcome.metrics, "history": outcome.history, "epochs_run": outcome.epochs_run}
    result.update(outcome.notes)
    columns = column_reports(outcome.signature)
    if columns:
        result["columns"] = columns
    return result


def _lineage(ctx: JobContext, spec: TrainSpec) -> dict[str, Any]:
    """Where a trained version comes from: its job, its dataset (with the file's SHA-256) and its spec."""
    if spec.environment is not None:
        return {"training_job_id": ctx.job.id, "environment": spec.environment.name, "spec": ctx.job.spec}
    dataset: dict[str, Any] = {"ref": spec.dataset}
    if spec.builtin is None:
        record = _record(ctx, str(spec.dataset))
        dataset.update({"id": record.id, "name": record.name, "format": record.format})
        store = store_for(ctx.settings)
        if not store.inside(record.path):  # by reference: its URL (the shards are not ours to hash)
            dataset["url"] = record.path
            return {"training_job_id": ctx.job.id, "dataset": dataset, "spec": ctx.job.spec}
        digest = hashlib.sha256()
        with store.open(record.path) as handle:
            for chunk in iter(functools.partial(handle.read, 1 << 20), b""):
                digest.update(chunk)
        dataset["sha256"] = digest.hexdigest()
    return {"training_job_id": ctx.job.id, "dataset": dataset, "spec": ctx.job.spec}


def _model_used(version: ModelVersionRecord, ref: str) -> dict[str, Any]:
    """What a predict or explain result records of the exact version it ran: id, name, number, the reference."""
    return {
        "model_id": version.model_id,
        "model_name": version.model_name,
        "version": version.version,
        "model_ref": ref,
    }


def _batch_done(ctx: JobContext) -> bool:
    """After each training batch: whether to stop (the first batch also ends the building phase)."""
    if current_phase() == "building":
        set_phase(f"epoch {int((ctx.job.progress or {}).get('epoch', 0)) + 1}")
    return ctx.control.should_stop()


def _epoch_done(ctx: JobContext, files: JobFiles, checkpoint: tuple[str, ...], progress: dict[str, Any]) -> None:
    """At each epoch's end: store its checkpoint files, log its figures, report them, and move to the next
    epoch's phase."""
    files.publish(*checkpoint)
    figures = "  ".join(
        f"{k} {v:.4f}" for k, v in progress.items() if k not in ("epoch", "epochs") and isinstance(v, int | float)
    )
    log.info("epoch %d/%d  %s", progress["epoch"], progress["epochs"], figures)
    ctx.control.report(progress)
    if progress["epoch"] < progress["epochs"]:
        set_phase(f"epoch {progress['epoch'] + 1}")


def _model(ctx: JobContext, ref: str) -> tuple[ModelVersionRecord, keras.Model]:
    """The model version ``ref`` names and the loaded Keras model (cached per process)."""
    from ml.inference import load_model

    set_phase("loading model")

    try:
        version = ctx.db.models.resolve(ctx.job.tenant_id, ref)
    except NotFound:
        raise InvalidRequest(f"model {ref} not found", code="unknown_model") from None
    loaded = load_model(model_file(ctx.settings, version))
    set_phase({"predict": "predicting", "explain": "explaining"}.get(ctx.job.type, "running"))
    return version, loaded


@contextlib.contextmanager
def _artifacts(ctx: JobContext) -> Iterator[Path]:
    """A local folder for the job's artifacts; the files written there are stored when the block ends."""
    with job_files(store_for(ctx.settings), ctx.job.id) as files:
        folder = files.local()
        yield folder
        files.publish(*sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")))


def predict(ctx: JobContext) -> HandlerResult:
    """Outputs for inline inputs or a dataset, per the model's task; large outputs become an artifact."""
    spec = parse(PredictSpec, ctx.job.spec, where="spec")
    version, model = _model(ctx, spec.model)
    task = version.interface.task
    # "task" tells a client (and the OpenAPI document's result union) which shape the result has.
    result: dict[str, Any] = {"task": task, **_model_used(version, spec.model)}
    if task == "recommend":
        spec.refuse_options_of_other_tasks(task)
        result.update(_recommend(ctx, model, spec))
        return HandlerResult(result)
    if task == "autoencode":
        spec.refuse_options_of_other_tasks(task)
        result.update(_autoencode(ctx, model, spec))
        return HandlerResult(result)
    spec.refuse_options_of_other_tasks(task)
    from ml.inference import predict as infer

    with _large_table(ctx, spec, version) as table:
        if table is not None:
            result.update(_predict_streamed(ctx, spec, version, model, table))
            return HandlerResult(result)
    raw, labels = _table(ctx, spec, version)
    if spec.row_range is not None:  # a shard of a dataset: its rows only
        start, stop = spec.row_range
        raw, labels = raw[start:stop], None if labels is None else labels[start:stop]
    x = model_rows(version, model, raw)
    outputs = infer(model, x)
    classifies = outputs.ndim == 2 and outputs.shape[1] > 1
    result["rows"] = len(x)
    if labels is not None:
        result["metrics"] = _scores(outputs, labels, classifies)
    names = version.interface.class_names if classifies else None
    if len(x) <= ctx.settings.max_inline_rows:
        result.update(inline_outputs(version, outputs))
        return HandlerResult(result)
    with _artifacts(ctx) as folder:
        _write_predictions(folder / "predictions.csv", outputs.reshape(len(outputs), -1))
    result["artifacts"] = ["predictions.csv"]
    if classifies:
        result["classes_preview"] = outputs[:20].argmax(axis=1).tolist()
        if names:
            result["labels_preview"] = _labels(names, result["classes_preview"])
    return HandlerResult(result)


def model_rows(version: ModelVersionRecord, model: keras.Model, inputs: Any) -> np.ndarray:
    """Inputs as the model's batch: an audio model's clips at its rate and window (``ml.audio.clips``), else
    ``ml.inference.coerce_inputs``."""
    if version.interface.kind == "audio":
        from ml import audio

        rate = int(version.signature.get("sample_rate") or 16_000)
        return audio.clips(inputs, rate, int(model.input_shape[1]))
    from ml.inference import coerce_inputs

    return coerce_inputs(model, inputs)


def predict_result(version: ModelVersionRecord, ref: str, rows: int) -> dict[str, Any]:
    """The head of a classifier's (or regressor's) predict result: its task, the version it ran, the rows."""
    return {"task": version.interface.task, **_model_used(version, ref), "rows": rows}


def inline_outputs(version: ModelVersionRecord, outputs: np.ndarray) -> dict[str, Any]:
    """The outputs of a predict result kept inline: rounded outputs, and classes (with labels) for a classifier;
    an agent's actions, their names and the action probabilities for a policy."""
    if version.interface.task == "reinforce":
        actions = outputs.argmax(axis=1).tolist()
        names = version.interface.class_names
        policy = {"actions": actions, "probabilities": outputs.round(6).tolist()}
        return {**policy, "action_names": _labels(names, actions)} if names else policy
    part: dict[str, Any] = {"outputs": outputs.round(6).tolist()}
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        part["classes"] = outputs.argmax(axis=1).tolist()
        names = version.interface.class_names
        if names:
            part["labels"] = _labels(names, part["classes"])
    return part


def _labels(names: Sequence[str], classes: list[int]) -> list[str]:
    """The stored class names of class ids (the id itself when the model has fewer names than outputs)."""
    return [str(names[c]) if c < len(names) else str(c) for c in classes]


def _write_predictions(path: Path, probabilities: np.ndarray) -> None:
    """Write ``row, class, p0..pN`` per row (probabilities as ``%.6g``, CSV lines ending in CRLF)."""
    with path.open("w", newline="") as handle:
        _predictions_header(handle, probabilities.shape[1])
        _prediction_lines(handle, probabilities, 0)


def _predictions_header(handle: IO[str], columns: int) -> None:
    """The header line of ``predictions.csv``."""
    handle.write(",".join(["row", "class", *[f"p{i}" for i in range(columns)]]) + "\r\n")


def _prediction_lines(handle: IO[str], probabilities: np.ndarray, first_row: int) -> None:
    """The lines of ``predictions.csv`` for rows ``first_row`` on (``CSV_CHUNK_ROWS`` formatted at once)."""
    columns = probabilities.shape[1]
    line = ",".join(["%d", "%d", *["%.6g"] * columns]) + "\r\n"
    for start in range(0, len(probabilities), CSV_CHUNK_ROWS):
        part = probabilities[start : start + CSV_CHUNK_ROWS]
        cells = np.empty((len(part), columns + 2), dtype=np.float64)
        cells[:, 0] = np.arange(first_row + start, first_row + start + len(part))
        cells[:, 1] = part.argmax(axis=1)
        cells[:, 2:] = part
        handle.write((line * len(part)) % tuple(cells.ravel().tolist()))


@contextlib.contextmanager
def _large_table(
    ctx: JobContext, spec: PredictSpec, version: ModelVersionRecord
) -> Iterator[tuple[Path, str, list[str]] | None]:
    """For a classifier's (or regressor's) predict on a large table (``_streams``): its local file, format and
    the model's feature columns while the block runs; None when the table is read whole (``_table``)."""
    features = named_features(version)
    if version.interface.kind == "audio" or spec.dataset is None or spec.dataset.startswith("builtin:"):
        yield None
        return
    record = _record(ctx, spec.dataset)
    if record.format not in TABLE_FORMATS or not features:
        yield None
        return
    with _local(ctx, record) as path:
        yield (path, record.format, list(features)) if _streams(ctx, path, record.format) else None


def _ranged_chunks(path: Path, fmt: str, columns: list[str], row_range: tuple[int, int] | None) -> Iterator[Any]:
    """The table's chunks (``ml.table_stream.chunks``) cut to the rows ``row_range`` (all rows when None)."""
    from ml.table_stream import chunks

    start, stop = row_range if row_range is not None else (0, None)
    offset = 0
    for batch in chunks(path, fmt, columns):
        first, offset = offset, offset + batch.num_rows
        if stop is not None and first >= stop:
            return
        low, high = max(start - first, 0), batch.num_rows if stop is None else min(stop - first, batch.num_rows)
        if high > low:
            yield batch.slice(low, high - low)


class _Scored:
    """Predictions' figures against labels summed chunk by chunk (what ``_scores`` gives on all rows)."""

    def __init__(self) -> None:
        self.labelled = 0
        self.total = 0.0
        self.classifies = False

    def add(self, outputs: np.ndarray, labels: np.ndarray | None) -> None:
        """Count one chunk's outputs against its labels (when it has them)."""
        self.classifies = outputs.ndim == 2 and outputs.shape[1] > 1
        if labels is None:
            return
        self.labelled += len(labels)
        if self.classifies:
            self.total += float((outputs.argmax(axis=1) == labels.astype(np.int64)).sum())
        else:
            error = outputs.reshape(len(outputs), -1)[:, 0] - labels.astype(np.float64)
            self.total += float((error**2).sum())

    def figures(self) -> dict[str, Any] | None:
        """Accuracy (classifier) or RMSE, and the labelled rows; None without labels."""
        if not self.labelled:
            return None
        mean = self.total / self.labelled
        figure = round(mean, 6) if self.classifies else round(float(np.sqrt(mean)), 6)
        return {"accuracy" if self.classifies else "rmse": figure, "labelled_rows": self.labelled}


def _label_for(spec: PredictSpec, version: ModelVersionRecord, names: list[str]) -> str | None:
    """The label column to score against: the spec's (refused when absent), else the one the version was
    trained against when the table has it."""
    trained_on = ((version.lineage or {}).get("spec") or {}).get("label_column")
    label = spec.label_column or trained_on
    if label is not None and label not in names:
        if spec.label_column is not None:
            raise InvalidRequest(f"label column '{label}' not in the table", details={"columns": names[:20]})
        return None
    return label


def _predict_streamed(
    ctx: JobContext,
    spec: PredictSpec,
    version: ModelVersionRecord,
    model: keras.Model,
    table: tuple[Path, str, list[str]],
) -> dict[str, Any]:
    """Predict on a table chunk by chunk (``ml.table_stream``): each chunk's rows read as ``_table`` reads the
    whole table, run through the model and appended to ``predictions.csv``, the figures against the labels
    summed as it goes. What it returns equals what the whole table's predict returns (plus ``streamed``)."""
    from ml.datasets import columns_of
    from ml.inference import predict as infer
    from ml.table_stream import chunk_cells, header

    path, fmt, features = table
    names = header(path, fmt)
    missing = [name for name in features if name not in names]
    if missing:
        raise InvalidRequest(
            f"the table lacks the model's feature columns {', '.join(missing)}",
            code="missing_columns",
            details={"missing": missing, "features": features},
        )
    label = _label_for(spec, version, names)
    class_names = None if version.interface.class_names is None else list(version.interface.class_names)
    wanted = [*features, label] if label is not None and label not in features else features
    inline = ctx.settings.max_inline_rows
    kept: list[np.ndarray] = []
    scored = _Scored()
    rows = 0
    with _artifacts(ctx) as folder, (folder / "predictions.csv").open("w", newline="") as handle:
        for part in _ranged_chunks(path, fmt, wanted, spec.row_range):
            x, y = columns_of(
                part.schema.names,
                chunk_cells(part),
                features,
                label,
                class_names,
                column_reports(version.signature),
                require_label=spec.label_column is not None,
            )
            outputs = infer(model, model_rows(version, model, x))
            if rows == 0:
                _predictions_header(handle, int(np.prod(outputs.shape[1:])))
            _prediction_lines(handle, outputs.reshape(len(outputs), -1), rows)
            scored.add(outputs, y)
            if rows <= inline:
                kept.append(outputs)
            rows += len(outputs)
        handle.close()
        if rows <= inline:
            (folder / "predictions.csv").unlink()
    result: dict[str, Any] = {"rows": rows, "streamed": True}
    figures = scored.figures()
    if figures is not None:
        result["metrics"] = figures
    if rows <= inline:
        return {**result, **inline_outputs(version, np.concatenate(kept) if kept else np.empty((0, 1)))}
    result["artifacts"] = ["predictions.csv"]
    if scored.classifies:
        result["classes_preview"] = np.concatenate(kept)[:20].argmax(axis=1).tolist()
        if class_names:
            result["labels_preview"] = _labels(class_names, result["classes_preview"])
    return result


def _table(
    ctx: JobContext, spec: PredictSpec, version: ModelVersionRecord
) -> tuple[list[Any] | np.ndarray, np.ndarray | None]:
    """A classifier's rows and, when the table has them, labels: a table (CSV or Parquet) is read by the
    model's own feature columns (any table that has them; other columns ignored; as cells for a model with a
    table encoder), labels from ``label_column`` or, when the table has it, the column the version was
    trained against."""
    if version.interface.kind == "audio" and spec.dataset is not None:
        return _clips_of(ctx, spec, version)
    features = named_features(version)
    if spec.dataset is None or spec.dataset.startswith("builtin:") or not features:
        return _inputs(ctx, spec), None
    record = _record(ctx, spec.dataset)
    if record.format not in TABLE_FORMATS:
        return _inputs(ctx, spec), None
    from ml.datasets import load_columns

    trained_on = ((version.lineage or {}).get("spec") or {}).get("label_column")
    names = version.interface.class_names
    with _local(ctx, record) as path:
        return load_columns(
            path,
            record.format,
            list(features),
            spec.label_column or trained_on,
            None if names is None else list(names),
            column_reports(version.signature),
            require_label=spec.label_column is not None,
        )


def _clips_of(ctx: JobContext, spec: PredictSpec, version: ModelVersionRecord) -> tuple[np.ndarray, np.ndarray | None]:
    """An uploaded zip of clips (or builtin:spoken_digits) for an audio model, at its rate and window, and their
    labels as its class ids when every label is one of its classes (else None: nothing to score against)."""
    from ml import datasets
    from ml.audio import load_zip

    rate = int(version.signature.get("sample_rate") or 16_000)
    length = int((version.signature.get("input_shape") or [rate])[0])
    if spec.dataset == "builtin:spoken_digits":
        data = datasets.load_spoken_digits(ctx.settings.cache_dir(), rate, length)
        x, labels = data.x, [str((data.class_names or [])[i]) for i in data.y]
    else:
        record = _record(ctx, str(spec.dataset))
        if record.format != "audio":
            raise InvalidRequest("an audio model predicts on a zip of WAV clips", code="data_does_not_fit")
        with _local(ctx, record) as local:
            x, labels = load_zip(str(local), rate, length)
    names = [str(n) for n in version.interface.class_names or ()]
    known = bool(names) and set(labels) <= set(names)
    return x, np.asarray([names.index(label) for label in labels]) if known else None


def _scores(outputs: np.ndarray, labels: np.ndarray, classifies: bool) -> dict[str, Any]:
    """How the predictions fare against the table's labels: accuracy for a classifier, else RMSE."""
    if classifies:
        hits = outputs.argmax(axis=1) == labels.astype(np.int64)
        return {"accuracy": round(float(hits.mean()), 6), "labelled_rows": len(labels)}
    error = outputs.reshape(len(outputs), -1)[:, 0] - labels.astype(np.float64)
    return {"rmse": round(float(np.sqrt(np.mean(error**2))), 6), "labelled_rows": len(labels)}


def _inputs(ctx: JobContext, spec: PredictSpec) -> list[Any] | np.ndarray:
    """The rows to run on: the spec's inline inputs, else its dataset's features."""
    if spec.inputs is not None:
        return spec.inputs
    if spec.dataset is None:
        raise InvalidRequest("give 'inputs' or 'dataset'")
    return _dataset(ctx, spec.dataset, require_labels=False).x


def _recommend(ctx: JobContext, model: keras.Model, spec: PredictSpec) -> dict[str, Any]:
    """A user's top-k items, or the ratings of (user, item) pairs (a CSV artifact when many)."""
    from ml.recommend import rate, top_k

    if spec.user is not None:
        items, scores = top_k(model, spec.user, spec.k or 10)
        return {"user": str(spec.user), "items": items, "scores": scores.round(6).tolist()}
    pairs, ratings = rate(model, spec.inputs)
    if len(pairs) <= ctx.settings.max_inline_rows:
        return {"rows": len(pairs), "ratings": ratings.round(6).tolist()}
    with _artifacts(ctx) as folder, (folder / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "rating"])
        writer.writerows([safe_cell(u), safe_cell(i), f"{r:.6g}"] for (u, i), r in zip(pairs, ratings, strict=True))
    return {"rows": len(pairs), "artifacts": ["predictions.csv"], "ratings_preview": ratings[:20].round(6).tolist()}


def _autoencode(ctx: JobContext, model: keras.Model, spec: PredictSpec) -> dict[str, Any]:
    """A vae's encode, reconstruct (the default) or sample; an ``outputs.npz`` artifact when many rows."""
    from ml import generative
    from ml.inference import coerce_inputs

    mode = spec.mode or "reconstruct"
    x = None if mode == "sample" else coerce_inputs(model, _inputs(ctx, spec))
    arrays = generative.run(model, mode, x, n=spec.n, seed=spec.seed)
    rows = len(next(iter(arrays.values())))
    result: dict[str, Any] = {"mode": mode, "rows": rows}
    if rows <= ctx.settings.max_inline_rows:
        result.update({name: np.asarray(a).round(6).tolist() for name, a in arrays.items()})
        return result
    with _artifacts(ctx) as folder:
        np.savez(folder / "outputs.npz", **arrays)
    result["artifacts"] = ["outputs.npz"]
    return result


def _rounded(attributions: np.ndarray | list[np.ndarray]) -> list[Any]:
    """Attributions as JSON lists rounded to 8 decimals, in float64 so that each prints as its short decimal."""
    if isinstance(attributions, np.ndarray):
        return np.round(attributions.astype(np.float64), 8).tolist()
    return [np.round(np.asarray(a, dtype=np.float64), 8).tolist() for a in attributions]


def explain(ctx: JobContext) -> HandlerResult:
    """Attributions for the inputs, the method's quality figure, words for text, and heatmaps for images."""
    from ml.inference import coerce_inputs

    spec = parse(ExplainSpec, ctx.job.spec, where="spec")
    version, model = _model(ctx, spec.model)
    refuse_unexplainable(version)
    if version.interface.kind == "audio":
        return HandlerResult(_explain_audio(ctx, version, model, spec))
    if version.interface.task == "reinforce":  # the chosen action's logit is explained
        from ml.architectures.policy import logits_of

        model = logits_of(model)
    x = coerce_inputs(model, spec.inputs)
    baseline, background = reference_rows(model, spec)
    explanation = attribute(model, x, spec, baseline, background)
    result = explain_result(version, spec, explanation)
    if version.interface.kind == "image":
        with _artifacts(ctx) as folder:
            result["artifacts"] = _heatmaps(folder, x, explanation)
    return HandlerResult(result)


def _explain_audio(
    ctx: JobContext, version: ModelVersionRecord, model: keras.Model, spec: ExplainSpec
) -> dict[str, Any]:
    """An audio model's explanation over time x frequency (``ml.explainers.audio``), with per clip the clip as
    the model heard it (``clip_<i>.wav``), its spectrogram and the heatmap of attributions over it."""
    from ml import audio
    from ml.explainers.audio import explain_audio
    from ml.heatmap import save_heatmap, save_picture

    x = model_rows(version, model, spec.inputs)
    options = {name: getattr(spec, name) for name in ("samples", "noise", "window", "stride", "nsamples", "seed")}
    explanation = explain_audio(model, x, spec.method, spec.target, spec.steps, options)
    result = explain_result(version, spec, explanation)
    result["attribution_axes"] = ["time", "frequency"]
    result["baseline"] = "silence"
    rate = int(version.signature.get("sample_rate") or 16_000)
    spectrograms = explanation.extras["spectrograms"]
    names = []
    with _artifacts(ctx) as folder:
        for i in range(min(len(x), MAX_HEATMAPS)):
            (folder / f"clip_{i}.wav").write_bytes(audio.wav_bytes(x[i], rate))
            upright = spectrograms[i].T[::-1]  # frequency up, time to the right
            save_picture(upright, folder / f"spectrogram_{i}.png", title="log-mel spectrogram")
            heat = np.asarray(explanation.attributions[i]).T[::-1]
            label = _labels(version.interface.class_names or (), [explanation.targets[i]])[0]
            save_heatmap(upright, heat, folder / f"heatmap_{i}.png", title=f"class {label}")
            names += [f"clip_{i}.wav", f"spectrogram_{i}.png", f"heatmap_{i}.png"]
    result["artifacts"] = names
    return result


def refuse_unexplainable(version: ModelVersionRecord) -> None:
    """InvalidRequest unless the version is a classifier (explanations are of class probabilities) or a policy
    (of its actions' logits)."""
    task = version.interface.task
    if task not in ("classify", "reinforce"):
        raise InvalidRequest(
            "explanations are for classifiers (class probabilities) and policies (action logits)",
            details={"task": task},
        )


def attribute(
    model: keras.Model, x: np.ndarray, spec: ExplainSpec, baseline: Any, background: np.ndarray | None
) -> Explanation:
    """The explanation of rows ``x`` with the spec's method and settings (``reference_rows``' baseline, background)."""
    from ml.explain import explain as run

    return run(
        model,
        x,
        spec.method,
        target=spec.target,
        steps=spec.steps,
        baseline=baseline,
        samples=spec.samples,
        noise=spec.noise,
        window=spec.window,
        stride=spec.stride,
        nsamples=spec.nsamples,
        background=background,
        seed=spec.seed,
    )


def explain_result(version: ModelVersionRecord, spec: ExplainSpec, explanation: Explanation) -> dict[str, Any]:
    """An explain job's result (without heatmaps): the version it ran, attributions, targets, quality figures."""
    result: dict[str, Any] = {
        **_model_used(version, spec.model),
        "baseline": spec.baseline,
        "method": explanation.method,
        "targets": list(explanation.targets),
        "attributions": _rounded(explanation.attributions),
        "quality": explanation.quality,
        "per_input_quality": explanation.per_input_quality,
    }
    for name in ("tokens", "expected_values"):
        if name in explanation.extras:
            result[name] = explanation.extras[name]
    if version.interface.feature_names:
        result["feature_names"] = list(version.interface.feature_names)
    if version.interface.task == "reinforce":
        result["explained"] = "logit"
        if version.interface.class_names:
            result["target_names"] = _labels(version.interface.class_names, result["targets"])
    return result


def reference_rows(model: keras.Model, spec: ExplainSpec) -> tuple[Any, np.ndarray | None]:
    """The baseline ("zeros", "mean", one row in the model's input form, or a table model's row of cells) and
    the SHAP background rows."""
    from ml.encoding import encoder_of
    from ml.inference import coerce_inputs, takes_strings

    baseline: Any = spec.baseline
    if encoder_of(model) is not None:  # a table model: rows of cells, checked by the explainer
        return baseline, None if spec.background is None else coerce_inputs(model, spec.background)
    if isinstance(baseline, list):
        if takes_strings(model):
            raise InvalidRequest("a text model's baseline is 'zeros' (words left out)")
        baseline = coerce_inputs(model, [baseline])[0]
    if spec.background is None:
        return baseline, None
    if takes_strings(model):
        raise InvalidRequest("background rows are for numeric inputs")
    return baseline, coerce_inputs(model, spec.background)


def _heatmaps(folder: Path, x: np.ndarray, explanation: Explanation) -> list[str]:
    """A heatmap PNG per input image (the first MAX_HEATMAPS); their file names."""
    from ml.heatmap import save_heatmap

    names = []
    for i in range(min(len(x), MAX_HEATMAPS)):
        name = f"heatmap_{i}.png"
        save_heatmap(x[i], explanation.attributions[i], folder / name, title=f"class {explanation.targets[i]}")
        names.append(name)
    return names


def import_model(ctx: JobContext) -> HandlerResult:
    """Check and safely load an uploaded ``.keras`` file, then register it as a model version."""
    from ml.model_import import load

    spec = parse(ImportSpec, ctx.job.spec, where="spec")
    store = store_for(ctx.settings)
    staged = store.location(staging_key(ctx.job.tenant_id, spec.upload))
    if not store.exists(staged):
        raise InvalidRequest("the uploaded model file is gone; upload it again")
    tenant = ctx.db.keys.tenant_name(ctx.job.tenant_id)
    with store.fetch(staged) as local:
        try:
            _, signature = load(
                local,
                max_params=ctx.settings.quota(tenant, "max_model_params"),
                max_memory_mb=ctx.settings.memory_budget_mb(tenant),
            )
        except TensorQError:
            store.remove_file(staged)  # refused for good: nothing of it is kept
            raise
        destination = store.put(local, store.job_location(ctx.job.id, "model.keras"))
    store.remove_file(staged)
    return HandlerResult(
        result={"model_name": spec.model_name, "signature": signature},
        model=ModelVersionDraft(
            model_name=spec.model_name, path=destination, architecture=IMPORTED, metrics={}, signature=signature
        ),
    )


HANDLERS: dict[str, Handler] = {"train": train, "predict": predict, "explain": explain, "import": import_model}
