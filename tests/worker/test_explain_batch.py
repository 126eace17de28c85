"""Micro-batched explain jobs on a real model: one explanation call for jobs of one version and one set of
settings, each job's result the one it gets alone, a job with bad inputs failing alone, other settings and
other versions left to run apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from db.database import Database
from tensorq.core.settings import Settings
from tests.conftest import make_settings
from tests.worker.batching import ROWS, assert_claimed_in_one_batch, assert_same_as_alone, submit, trained
from worker.explain_batch import key
from worker.runner import JobRunner

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


@pytest.mark.parametrize("method", list(METHODS))
def test_a_batch_of_explain_jobs_gives_each_job_the_result_it_gets_alone(
    settings: Settings, db: Database, method: str
) -> None:
    model = trained(settings, db, seed=0)
    options = {"method": method, **METHODS[method]}
    specs = [
        {"model": model, "inputs": ROWS, **options},
        {"model": f"{model}:1", "inputs": ROWS[1], **options},
        {"model": model, "inputs": [[1.0, 2.0]], **options},  # the wrong width: fails alone
        {"model": model, "inputs": ROWS[:2], **options},
    ]
    batch = [submit(db, "explain", spec) for spec in specs]
    assert JobRunner(settings, db).run(batch[0]) == "succeeded"
    jobs = [db.jobs.get_any(job_id) for job_id in batch]
    assert [j.status for j in jobs] == ["succeeded", "succeeded", "failed", "succeeded"]
    assert jobs[2].error["details"]["got_shape"] == [1, 2], jobs[2].error
    assert [JobRunner(settings, db).run(job_id) for job_id in batch[1:]] == ["skipped"] * 3
    assert_claimed_in_one_batch(db, jobs)
    assert_same_as_alone(settings, db, "explain", specs, jobs)
    assert len(jobs[0].result["attributions"]) == 3
    assert jobs[1].result["model_ref"] == f"{model}:1"


def test_explain_jobs_of_other_settings_or_versions_run_apart(settings: Settings, db: Database) -> None:
    model = trained(settings, db, seed=0)
    trained(settings, db, seed=1)  # version 2
    first = submit(db, "explain", {"model": f"{model}:1", "inputs": ROWS, "steps": 8})
    same = submit(db, "explain", {"model": f"{model}:1", "inputs": ROWS[:1], "steps": 8, "target": None})
    apart = [
        submit(db, "explain", {"model": f"{model}:2", "inputs": ROWS, "steps": 8}),  # another version
        submit(db, "explain", {"model": f"{model}:1", "inputs": ROWS, "steps": 9}),  # other settings
        submit(db, "explain", {"model": f"{model}:1", "inputs": ROWS, "method": "smoothgrad", "samples": 4}),
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
