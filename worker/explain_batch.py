"""Micro-batched explain jobs: jobs of one classifier version with the same explanation settings share one call.

An explain job on inline inputs may share an explanation call with others when its method explains each row
on its own (``ml.catalog.PER_ROW_METHODS``: integrated_gradients, occlusion, kernel_shap and lime; not
smoothgrad or gradient_shap, whose one random stream runs over all the rows) and its baseline is not "mean"
(the mean of the rows explained). Its batch key is its model reference and every other spec field but its
inputs (method, target, steps, baseline, background, window, stride, nsamples, seed, ...) as canonical JSON,
defaults filled in, so only jobs that would be explained alike share a call. Versions of image models (their
heatmap files) and text models (a batch's texts pad to its longest) share none: each such job runs alone.
Each job's result is ``ml.explain.rows_of`` its rows, what it gets alone.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import ValidationError

from db.batch_claim import BatchKey
from db.records import JobRecord, ModelVersionRecord
from ml.catalog import PER_ROW_METHODS
from ml.specs import ExplainSpec, parse

# Model kinds whose explain jobs run alone: images write a heatmap file per input, text pads to the longest.
ALONE_KINDS = ("image", "text")


def key(spec: dict[str, Any], max_rows: int) -> BatchKey | None:
    """The batch key of an explain spec with at most ``max_rows`` inputs and a per-row method; else None."""
    try:
        parsed = ExplainSpec.model_validate(spec)
    except ValidationError:
        return None  # it runs alone, and fails there with its own error
    if parsed.method not in PER_ROW_METHODS or parsed.baseline == "mean" or len(parsed.inputs) > max_rows:
        return None
    settings = parsed.model_dump(mode="json", exclude={"model", "inputs"})
    return BatchKey(parsed.model, json.dumps(settings, sort_keys=True, separators=(",", ":")))


def shares(version: ModelVersionRecord) -> bool:
    """Whether explain jobs on ``version`` may share a call: a classifier of neither images nor text."""
    signature = version.signature or {}
    return signature.get("task", "classify") == "classify" and signature.get("kind") not in ALONE_KINDS


class ExplainPass:
    """Explain jobs of one version and one set of settings: one explanation call over the concatenated rows."""

    phase = "explaining"

    def __init__(self, version: ModelVersionRecord) -> None:
        self.version = version

    def prepare(self, model: Any, job: JobRecord) -> tuple[ExplainSpec, np.ndarray, Any, Any] | None:
        """The job's spec, coerced rows, baseline and background (checked as the handler checks them); None for
        a model that takes text (it runs alone)."""
        from ml.encoding import encoder_of
        from ml.inference import coerce_inputs, takes_strings
        from worker.handlers import reference_rows, refuse_unexplainable

        spec = parse(ExplainSpec, job.spec, where="spec")
        refuse_unexplainable(self.version)
        if takes_strings(model) and encoder_of(model) is None:
            return None
        x = coerce_inputs(model, spec.inputs)
        baseline, background = reference_rows(model, spec)
        return spec, x, baseline, background

    def results(self, model: Any, ready: list[tuple[ExplainSpec, np.ndarray, Any, Any]]) -> list[dict[str, Any]]:
        """One explanation call (the jobs share their settings: the first's baseline and background serve all);
        each job's result from its own rows."""
        from ml.explain import rows_of
        from worker.handlers import attribute, explain_result

        spec, _, baseline, background = ready[0]
        explanation = attribute(model, np.concatenate([x for _, x, _, _ in ready]), spec, baseline, background)
        ends = np.cumsum([0, *(len(x) for _, x, _, _ in ready)])
        return [
            explain_result(self.version, own, rows_of(explanation, int(start), int(stop)))
            for (own, _, _, _), start, stop in zip(ready, ends[:-1], ends[1:], strict=True)
        ]
