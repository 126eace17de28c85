"""The plain functions behind each job type; they import the TensorFlow core lazily."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from db.jobs import ModelVersionDraft
from tensorq.errors import InvalidRequest, NotFound
from worker.runner import HandlerResult, JobContext

MAX_HEATMAPS = 100


def _dataset(ctx: JobContext, ref: str, label_column: str | None = None) -> Any:
    """Load a dataset spec value: ``builtin:<name>`` or one of the tenant's dataset ids."""
    from ml import datasets

    if ref.startswith("builtin:"):
        return datasets.load_builtin(ref.removeprefix("builtin:"))
    try:
        record = ctx.db.datasets.get(ctx.job.tenant_id, ref)
    except NotFound:
        raise InvalidRequest(f"dataset {ref} not found", code="unknown_dataset") from None
    return datasets.load_file(record.path, record.format, label_column)


def train(ctx: JobContext) -> HandlerResult:
    """Train a model from the job's spec and register it as a new version."""
    from ml.training import TrainConfig
    from ml.training import train as fit

    spec = ctx.job.spec
    data = _dataset(ctx, spec["dataset"], spec.get("label_column"))
    config = TrainConfig(
        architecture=spec["architecture"],
        params=spec.get("params", {}),
        epochs=spec["epochs"],
        batch_size=spec["batch_size"],
        validation_split=spec["validation_split"],
        learning_rate=spec["learning_rate"],
        optimizer=spec.get("optimizer", "adam"),
        early_stopping=spec.get("early_stopping"),
        seed=spec.get("seed"),
        test_split=spec.get("test_split", 0.0),
    )
    outcome = fit(
        config,
        data,
        ctx.settings.job_dir(ctx.job.id),
        on_epoch=ctx.control.report,
        should_stop=ctx.control.should_stop,
    )
    signature = {
        "input_shape": list(outcome.input_shape),
        "num_classes": outcome.num_classes,
        "kind": data.kind,
        "feature_names": data.feature_names,
        "class_names": data.class_names,
    }
    name = spec.get("model_name") or f"{spec['architecture']}-{spec['dataset'].removeprefix('builtin:')}"
    return HandlerResult(
        result={"metrics": outcome.metrics, "history": outcome.history, "epochs_run": outcome.epochs_run},
        model=ModelVersionDraft(
            model_name=name,
            path=str(outcome.model_path),
            architecture=spec["architecture"],
            metrics=outcome.metrics,
            signature=signature,
        ),
    )


def _model(ctx: JobContext) -> tuple[Any, Any]:
    """The model version the spec names and the loaded Keras model (cached per process)."""
    from ml.inference import load_model

    try:
        version = ctx.db.models.resolve(ctx.job.tenant_id, ctx.job.spec["model"])
    except NotFound:
        raise InvalidRequest(f"model {ctx.job.spec['model']} not found", code="unknown_model") from None
    return version, load_model(version.path)


def predict(ctx: JobContext) -> HandlerResult:
    """Class probabilities for inline inputs or a dataset; large outputs become a CSV artifact."""
    from ml.inference import coerce_inputs
    from ml.inference import predict as infer

    spec = ctx.job.spec
    version, model = _model(ctx)
    if "inputs" in spec:
        x = coerce_inputs(model, spec["inputs"])
    else:
        x = coerce_inputs(model, _dataset(ctx, spec["dataset"]).x)
    probabilities = infer(model, x)
    classes = probabilities.argmax(axis=1).tolist()
    result: dict[str, Any] = {"model_id": version.model_id, "version": version.version, "rows": len(x)}
    if len(x) <= ctx.settings.max_inline_rows:
        result.update(outputs=probabilities.round(6).tolist(), classes=classes)
        return HandlerResult(result)
    folder = ctx.settings.job_dir(ctx.job.id)
    folder.mkdir(parents=True, exist_ok=True)
    _write_predictions(folder / "predictions.csv", probabilities)
    result.update(artifacts=["predictions.csv"], classes_preview=classes[:20])
    return HandlerResult(result)


def _write_predictions(path: Path, probabilities: np.ndarray) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "class", *[f"p{i}" for i in range(probabilities.shape[1])]])
        for i, row in enumerate(probabilities):
            writer.writerow([i, int(row.argmax()), *[f"{p:.6g}" for p in row]])


def explain(ctx: JobContext) -> HandlerResult:
    """Attributions for the inputs, the method's quality figure, and heatmaps for images."""
    from ml.explain import explain as attribute
    from ml.heatmap import save_heatmap
    from ml.inference import coerce_inputs

    spec = ctx.job.spec
    version, model = _model(ctx)
    x = coerce_inputs(model, spec["inputs"])
    baseline = spec.get("baseline", "zeros")
    if isinstance(baseline, list):
        baseline = coerce_inputs(model, [baseline])[0]
    explanation = attribute(
        model,
        x,
        spec.get("method", "integrated_gradients"),
        target=spec.get("target"),
        steps=spec.get("steps", 64),
        baseline=baseline,
    )
    result: dict[str, Any] = {
        "model_id": version.model_id,
        "version": version.version,
        "method": explanation.method,
        "targets": list(explanation.targets),
        "attributions": np.asarray(explanation.attributions).round(8).tolist(),
        "quality": explanation.quality,
        "per_input_quality": explanation.per_input_gap,
    }
    if version.signature.get("feature_names"):
        result["feature_names"] = version.signature["feature_names"]
    if version.signature.get("kind") == "image":
        folder = ctx.settings.job_dir(ctx.job.id)
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for i in range(min(len(x), MAX_HEATMAPS)):
            name = f"heatmap_{i}.png"
            save_heatmap(x[i], explanation.attributions[i], folder / name, title=f"class {explanation.targets[i]}")
            names.append(name)
        result["artifacts"] = names
    return HandlerResult(result)


HANDLERS = {"train": train, "predict": predict, "explain": explain}
