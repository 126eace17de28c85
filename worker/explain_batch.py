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

# Model kinds whose explain jobs run alone: images and audio write files per input, text pads to the longest.
ALONE_KINDS = ("image", "text", "audio")


def key(spec: dict[str, Any], max_rows: int) -> BatchKey | None:
    """The batch key of an explain spec with at most ``max_rows`` inputs and a per-row method; else None."""
    try:
        parsed = ExplainSpec.model_validate(spec)
    except ValidationError:
        return None  # it runs alone, and fails there with its own error
    if parsed.method not in PER_ROW_METHODS or parsed.baseline == "mean" or len(parsed.inputs) > max_rows:
        return None
    if parsed.shard is not None:  # the shards of one job are spread over the workers, not run together
        return None
    settings = parsed.model_dump(mode="json", exclude={"model", "inputs"})
    return BatchKey(parsed.model, json.dumps(settings, sort_keys=True, separators=(",", ":")))


def shares(version: ModelVersionRecord) -> bool:
    """Whether explain jobs on ``version`` may share a call: a classifier of neither images nor text."""
    return version.interface.task == "classify" and version.interface.kind not in ALONE_KINDS


class ExplainPass:
    """Explain jobs of one version and one set of settings: one explanation call over the concatenated rows."""

    phase = "explaining"

    def __init__(self, version: ModelVersionRecord) -> None:
        self.version = version
        # The baseline and background rows: the jobs share their settings, so one computation serves all.
        self._reference: tuple[Any, Any] | None = None

    def prepare(self, model: Any, job: JobRecord) -> tuple[ExplainSpec, np.ndarray] | None:
        """The job's spec and coerced rows, checked as the handler checks them (the version is a classifier:
        ``shares`` allowed it); None for a model that takes text (it runs alone)."""
        from ml.encoding import encoder_of
        from ml.inference import coerce_inputs, takes_strings
        from worker.handlers import reference_rows

        spec = parse(ExplainSpec, job.spec, where="spec")
        if takes_strings(model) and encoder_of(model) is None:
            return None
        x = coerce_inputs(model, spec.inputs)
        if self._reference is None:
            self._reference = reference_rows(model, spec)
        return spec, x

    def results(self, model: Any, ready: list[tuple[ExplainSpec, np.ndarray]]) -> list[dict[str, Any]]:
        """One explanation call with the shared settings and reference rows; each job's result from its own rows."""
        from ml.explain import rows_of
        from worker.handlers import attribute, explain_result

        assert self._reference is not None  # set by the first prepared job
        baseline, background = self._reference
        spec = ready[0][0]
        explanation = attribute(model, np.concatenate([x for _, x in ready]), spec, baseline, background)
        ends = np.cumsum([0, *(len(x) for _, x in ready)])
        return [
            explain_result(self.version, own, rows_of(explanation, int(start), int(stop)))
            for (own, _), start, stop in zip(ready, ends[:-1], ends[1:], strict=True)
        ]
