"""Micro-batched explain jobs on a real model: one explanation call for jobs of one version and one set of
settings, each job's result the one it gets alone, a job with bad inputs failing alone, other settings and
other versions left to run apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from db.database import Database
from db.jobs import NewJob
from tensorq.settings import Settings
from tests.conftest import make_settings
from worker.explain_batch import key
from worker.runner import JobRunner

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
# Each per-row method with settings small enough to be quick.
METHODS: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"steps": 16},
    "occlusion": {"window": 2},
    "kernel_shap": {"background": ROWS, "nsamples": 8, "seed": 3},  # sampled (below 2^4 - 2),
    "lime": {"nsamples": 40, "seed": 5, "baseline": [5.0, 3.0, 4.0, 1.0]},
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite: the claim statements are tested on both databases in tests/db/test_batch_claim.py."""
    return make_settings(tmp_path, f"sqlite:///{tmp_path / 'tensorq.sqlite3'}")


def _submit(db: Database, job_type: str, spec: dict) -> str:
    return db.jobs.submit(NewJob(db.keys.ensure_tenant("acme"), job_type, spec)).job.id


def _trained(settings: Settings, db: Database, seed: int = 0) -> str:
    spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1, "model_name": "m", "seed": seed}
    job_id = _submit(db, "train", spec)
    assert JobRunner(settings, db).run(job_id) == "succeeded", db.jobs.get_any(job_id).error
    return "m"


@pytest.mark.parametrize("method", list(METHODS))
def test_a_batch_of_explain_jobs_gives_each_job_the_result_it_gets_alone(
    settings: Settings, db: Database, method: str
) -> None:
    model = _trained(settings, db)
    options = {"method": method, **METHODS[method]}
    specs = [
        {"model": model, "inputs": ROWS, **options},
        {"model": f"{model}:1", "inputs": ROWS[1], **options},
        {"model": model, "inputs": [[1.0, 2.0]], **options},  # the wrong width: fails alone
        {"model": model, "inputs": ROWS[:2], **options},
    ]
    batch = [_submit(db, "explain", spec) for spec in specs]
    assert JobRunner(settings, db).run(batch[0]) == "succeeded"
    jobs = [db.jobs.get_any(job_id) for job_id in batch]
    assert [j.status for j in jobs] == ["succeeded", "succeeded", "failed", "succeeded"]
    assert jobs[2].error["details"]["got_shape"] == [1, 2], jobs[2].error
    assert [JobRunner(settings, db).run(job_id) for job_id in batch[1:]] == ["skipped"] * 3
    for job in jobs:
        claims = [e for e in db.jobs.events(job.tenant_id, job.id) if e.to_status == "running"]
        assert claims[0].data["batch_size"] == 4
        assert any("in a batch of 4" in line.message for line in db.logs.page(job.tenant_id, job.id).lines)

    alone = make_settings(Path(settings.artifact_dir).parent, settings.database_url, batch_max_jobs=1)
    one_by_one = [_submit(db, "explain", spec) for spec in specs]
    for job_id in one_by_one:
        JobRunner(alone, db).run(job_id)
    for batched, single in zip(jobs, [db.jobs.get_any(i) for i in one_by_one], strict=True):
        assert batched.status == single.status
        assert batched.result == single.result
        assert (batched.error or {}).get("code") == (single.error or {}).get("code")
    assert len(jobs[0].result["attributions"]) == 3
    assert jobs[1].result["model_ref"] == f"{model}:1"


def test_explain_jobs_of_other_settings_or_versions_run_apart(settings: Settings, db: Database) -> None:
    model = _trained(settings, db)
    _trained(settings, db, seed=1)  # version 2
    first = _submit(db, "explain", {"model": f"{model}:1", "inputs": ROWS, "steps": 8})
    same = _submit(db, "explain", {"model": f"{model}:1", "inputs": ROWS[:1], "steps": 8, "target": None})
    apart = [
        _submit(db, "explain", {"model": f"{model}:2", "inputs": ROWS, "steps": 8}),  # another version
        _submit(db, "explain", {"model": f"{model}:1", "inputs": ROWS, "steps": 9}),  # other settings
        _submit(db, "explain", {"model": f"{model}:1", "inputs": ROWS, "method": "smoothgrad", "samples": 4}),
    ]
    runner = JobRunner(settings, db)
    assert runner.run(first) == "succeeded"
    assert db.jobs.get_any(same).status == "succeeded"
    assert [db.jobs.get_any(job_id).status for job_id in apart] == ["queued"] * 3
    lines = db.logs.page(db.jobs.get_any(first).tenant_id, first).lines
    assert any("in a batch of 2" in line.message for line in lines)
    assert [runner.run(job_id) for job_id in apart] == ["succeeded"] * 3
    assert db.jobs.get_any(apart[0]).result["version"] == 2


def test_the_key_holds_every_setting_but_the_inputs_and_refuses_methods_that_depend_on_the_batch() -> None:
    base = {"model": "m", "inputs": ROWS}
    plain = key(base, max_rows=10)
    assert plain is not None
    assert plain.model == "m"
    assert key({**base, "method": "integrated_gradients", "steps": 64, "inputs": ROWS[:1]}, 10) == plain
    assert key({**base, "model": "m:1"}, 10).settings == plain.settings  # type: ignore[union-attr]
    for other in ({"steps": 32}, {"target": 1}, {"baseline": [0, 0, 0, 1]}, {"seed": 1}, {"method": "occlusion"}):
        assert key({**base, **other}, 10).settings != plain.settings  # type: ignore[union-attr]
    for alone in ({"method": "smoothgrad"}, {"method": "gradient_shap"}, {"baseline": "mean"}, {"steps": 0}):
        assert key({**base, **alone}, 10) is None
    assert key(base, max_rows=2) is None
