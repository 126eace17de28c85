"""Micro-batching in the worker: small predict and explain jobs of one model version run as one pass.

Batched are predict jobs on inline inputs of one resolved model version (one forward pass over their rows),
and explain jobs on inline inputs of one resolved classifier version with the same method and settings whose
rows are explained each on its own (``worker/explain_batch.py``: integrated_gradients, occlusion,
kernel_shap and lime, not with the "mean" baseline, not of image or text models; one explanation call).

A worker that takes such a job claims with it, in the same transaction, up to ``batch_max_jobs`` queued
jobs of the same tenant, type, settings and resolved version (``db/batch_claim.py``), waits at most
``batch_wait_ms`` for more when the batch is not full, checks and coerces each job's inputs on its own (a
job whose inputs are refused fails alone), runs the pass once over the concatenated rows, and records every
outcome in one transaction; each job gets the result it gets alone. The batch-mates' own messages, delivered
later, are acknowledged without running anything: from the process's memory of the mates it finished
(``worker/ended.py``), else after a claim that finds their jobs taken. Any fault of the batch as a whole (the
model cannot be loaded, the pass raises) makes each job run alone through ``JobRunner.run_claimed``, exactly
as without batching. A job's own error ends it as it would alone (``worker.outcome.outcome_of``); a job handed
back (the worker drains) hands its whole batch back.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from db.batch_claim import BatchClaim, BatchKey, Outcome
from db.database import Database
from db.joblogs import LogLine
from db.jobs import Deferred
from db.models import utcnow
from db.records import JobRecord, ModelVersionRecord
from ml.specs import PredictSpec, parse
from tensorq.core.errors import TensorQError
from tensorq.core.settings import Settings
from worker import explain_batch
from worker.control import JobControl
from worker.ended import EndedHere
from worker.memory import job_memory_ceiling
from worker.outcome import JobOutcome, outcome_of
from worker.presence import note_job
from worker.requeue import Requeue
from worker.retry import with_backoff
from worker.storage import model_file
from worker.tf_boot import wait_until_loaded

log = logging.getLogger(__name__)
# Predict options that make a job run alone (a dataset to read, a recommender's or a vae's own modes, a shard:
# the shards of one job are spread over the workers, not run together).
ALONE_OPTIONS = ("dataset", "mode", "n", "seed", "user", "k", "label_column", "shard")
# Model tasks whose predict results are the plain outputs of one forward pass.
UNBATCHED_TASKS = ("recommend", "autoencode")


def batchable(job_type: str, spec: dict[str, Any], max_rows: int) -> BatchKey | None:
    """The key of a job that may share a pass: a predict on at most ``max_rows`` inline inputs and no other
    option (its model reference), or an explain that ``explain_batch.key`` allows; None for every other job
    (it runs alone)."""
    if not isinstance(spec, dict):
        return None
    if job_type == "explain":
        return explain_batch.key(spec, max_rows)
    if job_type != "predict":
        return None
    inputs, ref = spec.get("inputs"), spec.get("model")
    if not isinstance(inputs, list) or not isinstance(ref, str) or len(inputs) > max_rows:
        return None
    if any(spec.get(name) is not None for name in ALONE_OPTIONS):
        return None
    return BatchKey(ref)


def shares(job_type: str, version: ModelVersionRecord) -> bool:
    """Whether jobs of ``job_type`` on ``version`` may share a pass (explain: ``explain_batch.shares``; predict:
    not a recommender's or a vae's, whose jobs would only run one after another under one worker's claim)."""
    if job_type == "explain":
        return explain_batch.shares(version)
    return str(version.signature.get("task", "classify")) not in UNBATCHED_TASKS


class Pass(Protocol):
    """One kind of batched work: each job's checked inputs, then one pass over all of them."""

    phase: str

    def prepare(self, model: Any, job: JobRecord) -> Any | None:
        """The job's checked spec and rows (raises the job's own error; None: it runs alone)."""

    def results(self, model: Any, ready: list[Any]) -> list[dict[str, Any]]:
        """One pass over the rows of every prepared job; each job's result, in order."""


class _PredictPass:
    """Predict jobs: one forward pass over the concatenated rows."""

    phase = "predicting"

    def __init__(self, version: ModelVersionRecord, max_rows: int) -> None:
        self.version = version
        self.max_rows = max_rows

    def prepare(self, model: Any, job: JobRecord) -> tuple[PredictSpec, np.ndarray] | None:
        """The job's spec and coerced rows; None when its outputs become an artifact (the single-job path)."""
        from worker.handlers import model_rows

        spec = parse(PredictSpec, job.spec, where="spec")
        spec.refuse_options_of_other_tasks(str(self.version.signature.get("task", "classify")))
        x = model_rows(self.version, model, spec.inputs)
        return None if len(x) > self.max_rows else (spec, x)

    def results(self, model: Any, ready: list[tuple[PredictSpec, np.ndarray]]) -> list[dict[str, Any]]:
        """One forward pass; each job's outputs."""
        from ml.inference import predict as infer
        from worker.handlers import inline_outputs, predict_result

        outputs = infer(model, np.concatenate([x for _, x in ready]))
        ends = np.cumsum([len(x) for _, x in ready])
        return [
            {**predict_result(self.version, spec.model, len(x)), **inline_outputs(self.version, part)}
            for (spec, x), part in zip(ready, np.split(outputs, ends[:-1]), strict=True)
        ]


def _pass(job_type: str, version: ModelVersionRecord, max_rows: int) -> Pass:
    """The batched work for jobs of ``job_type`` on ``version`` (one that ``shares`` allowed)."""
    if job_type == "explain":
        return explain_batch.ExplainPass(version)
    return _PredictPass(version, max_rows)


# Runs a claimed job alone, under the claim's token, and records its outcome (``JobRunner.run_claimed``).
RunAlone = Callable[[JobRecord, str], str]


class Batcher:
    """A worker process's micro-batching: claims a job with its batch-mates, runs them, and remembers the mates
    that succeeded here (their own deliveries end without a claim)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        name: str,
        requeue: Requeue,
        run_alone: RunAlone,
        memory_headroom_mb: int = 0,
    ) -> None:
        self.settings = settings
        self.db = db
        self.name = name
        self.requeue = requeue
        self.run_alone = run_alone
        self.memory_headroom_mb = memory_headroom_mb
        self.ended_here = EndedHere()

    def run(self, job_id: str) -> str:
        """Claim the job with its batch-mates and run them; how ``job_id`` ended here ('skipped' when taken)."""
        if self.ended_here.take(job_id):
            log.debug("job %s: succeeded in a batch of this process; skipping its delivery", job_id)
            return "batched"
        settings, store = self.settings, self.db.batches
        limit = functools.partial(settings.quota, name="quota_running_jobs")
        check = functools.partial(batchable, max_rows=settings.max_inline_rows)
        most = settings.batch_max_jobs
        claim = with_backoff(
            lambda: store.claim(job_id, self.name, max_jobs=most, batchable=check, running_limit=limit, shares=shares),
            what=f"claim {job_id}",
        )
        if claim is None:
            log.info("job %s: not claimable (taken, cancelled or finished); skipping", job_id)
            return "skipped"
        if isinstance(claim, Deferred):
            return self.requeue.defer(job_id, claim.reason)
        if claim.version is None:  # not batchable: the single-job path, exactly as without batching
            return self.run_alone(claim.first, claim.lease_token)
        grow = None
        if settings.batch_wait_ms > 0 and len(claim.jobs) < most:

            def grow(current: BatchClaim) -> BatchClaim:
                """After the wait, the jobs that arrived meanwhile (the claimed ones keep their leases alive)."""
                time.sleep(settings.batch_wait_ms / 1000)
                room = most - len(current.jobs)
                return store.claim_more(current, self.name, room=room, batchable=check, running_limit=limit)

        # A batch of one too: its outcome and log lines are then recorded in one transaction.
        ended = _Batch(self, claim).run(grow)
        self.ended_here.note(mate for mate, end in ended.items() if end == "succeeded" and mate != job_id)
        return ended.get(job_id, "skipped")


class _HandBack(Exception):
    """A job of the batch is handed back (the worker drains): so is the whole batch, with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Batch:
    """One claimed batch: checks, the pass, the outcomes."""

    def __init__(self, batcher: Batcher, claim: BatchClaim) -> None:
        self.batcher = batcher
        self.claim = claim
        self.token = claim.lease_token

    def run(self, grow: Callable[[BatchClaim], BatchClaim] | None = None) -> dict[str, str]:
        """Run every job of the batch (one pass, or each alone after a fault); each job's end here.
        ``grow`` (the batching wait) may add jobs first, while the claimed ones' leases are kept alive."""
        controls: dict[str, JobControl] = {}
        ended: dict[str, str] = {}
        note_job(self.claim.first.id)
        with contextlib.ExitStack() as stack:
            stack.callback(note_job, None)
            self._keep(controls, stack)
            if grow is not None:
                try:
                    self.claim = grow(self.claim)
                except Exception:  # noqa: BLE001 - a database blip: run the jobs already claimed
                    log.warning("could not claim more jobs for a batch; running the %d claimed", len(controls))
                self._keep(controls, stack)
            try:
                outcomes, alone = self._run_pass(controls, ended)
            except _HandBack as back:
                requeue = self.batcher.requeue
                return {job.id: requeue.hand_back(job, self.token, back.reason) for job in self.claim.jobs}
            except Exception:  # noqa: BLE001 - a fault of the batch as a whole: each job runs alone, as unbatched
                log.warning("batch of %d jobs failed as a whole; running each alone", len(controls), exc_info=True)
                outcomes, alone = {}, [j for j in self.claim.jobs if j.id not in ended]
            if outcomes:
                finish = self.batcher.db.batches.finish
                ended.update(with_backoff(lambda: finish(self.token, outcomes), what="record a batch"))
            for job in alone:
                ended[job.id] = self.batcher.run_alone(job, self.token)
        return ended

    def _keep(self, controls: dict[str, JobControl], stack: contextlib.ExitStack) -> None:
        """Keep the lease of every job of the claim alive (and watch for its cancel) until the batch ends."""
        settings = self.batcher.settings
        for job in self.claim.jobs:
            if job.id not in controls:
                controls[job.id] = stack.enter_context(
                    JobControl(
                        self.batcher.db.jobs,
                        job.id,
                        self.token,
                        heartbeat_s=settings.heartbeat_s,
                        timeout_s=job.timeout_s,
                        progress_interval_s=settings.progress_min_interval_s,
                    )
                )

    def _run_pass(
        self, controls: dict[str, JobControl], ended: dict[str, str]
    ) -> tuple[dict[str, Outcome], list[JobRecord]]:
        """The outcome of each job that ran in the batch's pass, and the jobs that must run alone."""
        wait_until_loaded(lambda: None)  # the leases beat meanwhile; worker/tf_boot.py
        from ml.inference import load_model

        version = self.claim.version
        assert version is not None
        work = _pass(self.claim.first.type, version, self.batcher.settings.max_inline_rows)
        outcomes: dict[str, Outcome] = {}
        alone: list[JobRecord] = []
        ready: list[tuple[JobRecord, Any]] = []
        model = load_model(model_file(self.batcher.settings, version))
        for job in self.claim.jobs:
            try:
                controls[job.id].check()
                prepared = work.prepare(model, job)
            except TensorQError as exc:  # the job's own end, as alone; any other error is the batch's fault
                self._end(job, outcome_of(exc, job, work.phase), outcomes, ended, work.phase)
                continue
            if prepared is None:
                alone.append(job)
                continue
            ready.append((job, prepared))
        if ready:
            with job_memory_ceiling(self.batcher.memory_headroom_mb):
                results = work.results(model, [item for _, item in ready])
            for (job, _), result in zip(ready, results, strict=True):
                outcomes[job.id] = Outcome("succeeded", result=result, log=self._lines(job, work.phase))
        return outcomes, alone

    def _end(
        self, job: JobRecord, outcome: JobOutcome, outcomes: dict[str, Outcome], ended: dict[str, str], phase: str
    ) -> None:
        """Note how a job that stopped before the pass ends: failed or cancelled with the batch's outcomes, lease
        lost at once, retried later on its own; a hand-back hands the whole batch back (``_HandBack``)."""
        if outcome.end in ("failed", "cancelled"):
            log_lines = self._lines(job, phase, outcome.error)
            outcomes[job.id] = Outcome(outcome.end, error=outcome.error, log=log_lines)
        elif outcome.end == "handed_back":
            raise _HandBack(outcome.reason or outcome.end)
        elif outcome.end == "retry_later":
            ended[job.id] = self.batcher.requeue.retry_later(job, self.token, outcome.reason or outcome.end)
        else:
            ended[job.id] = outcome.end

    def _lines(self, job: JobRecord, phase: str, error: dict[str, Any] | None = None) -> list[LogLine]:
        """The job's own log lines for this attempt (written with its outcome)."""
        version = self.claim.version
        size = len(self.claim.jobs)
        where = f"{version.model_name}:{version.version}" if version is not None else "?"
        now = utcnow()
        lines = [
            LogLine(
                job.attempts,
                "INFO",
                __name__,
                f"{job.type} job {job.id}: attempt {job.attempts} of {job.max_attempts} on {self.batcher.name}, "
                f"in a batch of {size} on model {where}",
                now,
            )
        ]
        if error is not None:
            lines.append(
                LogLine(
                    job.attempts,
                    "ERROR",
                    __name__,
                    f"failed while {phase}: {error['code']}: {error['message']}",
                    now,
                )
            )
        return lines
