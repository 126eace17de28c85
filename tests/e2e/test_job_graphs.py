"""Jobs made of jobs with a real worker: a batch's parent followed to its end (and by ``tensorq jobs watch``),
and sharded predict and explain whose parents' results equal the unsharded runs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from db.database import Database
from db.migrate import upgrade
from ml.catalog import PER_ROW_METHODS
from tensorq.client import Job, TensorQClient
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import make_settings
from tests.e2e.test_cli_jobs import tensorq
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.0, 3.4, 1.5, 0.2], [6.0, 2.2, 5.0, 1.5]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """SQLite, a Redis of its own, the API in a thread and one real worker; an iris model trained on it."""
    home = tmp_path_factory.mktemp("graphs")
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(home, f"sqlite:///{home / 'tq.sqlite3'}", broker_url=redis_server.url)
    upgrade(settings.database_url)
    db = Database(settings)
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, home / "worker.log").start()
    wait_http(f"{api.url}/readyz")
    key = db.keys.create("acme")
    client = TensorQClient(api.url, key)
    try:
        spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 3, "seed": 1}
        trained = client.run("train", spec, timeout=600)
        assert trained.status == "succeeded", trained.error
        env = {"TENSORQ_URL": api.url, "TENSORQ_KEY": key}
        yield {"client": client, "model": trained.result["model_id"], "env": env}
    finally:
        client.close()
        worker.stop()
        api.stop()
        db.dispose()
        redis_server.stop()
        log = home / "worker.log"
        if log.exists():
            print(log.read_text()[-4000:])


def _end(client: TensorQClient, job: Job) -> Job:
    return client.wait(job.id, timeout=600, poll=25)


def test_a_batch_parent_ends_with_its_children_and_watch_shows_their_counts(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    predicts = [{"type": "predict", "spec": {"model": stack["model"], "inputs": [row]}} for row in ROWS[:3]]
    parent, children = client.submit_group(predicts, {"name": "three"})
    assert parent.children is not None
    assert parent.children["total"] == 3
    watched = tensorq(["jobs", "watch", parent.id], stack["env"])
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "children 3/3 succeeded" in watched.stdout
    assert f"children: tensorq jobs list --parent {parent.id}" in watched.stdout
    done = client.job(parent.id)
    assert done.status == "succeeded"
    assert done.result == {"children": {**parent.children, "queued": 0, "succeeded": 3}}
    assert done.progress == {"done": 3, "total": 3, "fraction": 1.0}
    listed = client.jobs(parent=parent.id).jobs
    assert sorted(job.id for job in listed) == sorted(job.id for job in children)
    assert {job.status for job in listed} == {"succeeded"}


def test_a_sharded_predict_gives_what_the_unsharded_one_does(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    whole = client.submit("predict", {"model": stack["model"], "inputs": ROWS})
    sharded = client.submit("predict", {"model": stack["model"], "inputs": ROWS, "shards": 2})
    assert sharded.children is not None
    assert sharded.children["total"] == 2
    shards = client.jobs(parent=sharded.id, fields="spec").jobs
    assert sorted(len(job.spec["inputs"]) for job in shards) == [2, 3]
    whole, sharded = _end(client, whole), _end(client, sharded)
    assert (whole.status, sharded.status) == ("succeeded", "succeeded")
    assert sharded.result["rows"] == whole.result["rows"] == len(ROWS)
    assert sharded.result["classes"] == whole.result["classes"]
    np.testing.assert_allclose(sharded.result["outputs"], whole.result["outputs"], atol=1e-5)
    assert sharded.result["model_id"] == whole.result["model_id"]


@pytest.mark.parametrize("method", PER_ROW_METHODS)
def test_a_sharded_explain_gives_what_the_unsharded_one_does(stack: dict, method: str) -> None:
    client: TensorQClient = stack["client"]
    spec = {"model": stack["model"], "inputs": ROWS, "method": method, "seed": 4}
    if method in ("kernel_shap", "lime"):
        spec.update(nsamples=64)
    if method == "kernel_shap":
        spec.update(background=ROWS[:2])
    whole = client.submit("explain", spec)
    sharded = client.submit("explain", {**spec, "shards": 2})
    whole, sharded = _end(client, whole), _end(client, sharded)
    assert (whole.status, sharded.status) == ("succeeded", "succeeded"), (whole.error, sharded.error)
    assert sharded.result["targets"] == whole.result["targets"]
    np.testing.assert_allclose(sharded.result["attributions"], whole.result["attributions"], atol=1e-5)
    np.testing.assert_allclose(sharded.result["per_input_quality"], whole.result["per_input_quality"], atol=1e-5)
    for name, value in whole.result["quality"].items():
        assert sharded.result["quality"][name] == pytest.approx(value, abs=1e-5)


def test_a_tune_of_6_trials_prunes_and_registers_its_best_model_which_predicts(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    spec = {
        "train": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 6, "batch_size": 16, "seed": 1},
        # A learning rate that barely learns in 6 epochs beside one that does: the median pruner stops the former.
        "search_space": {"learning_rate": {"type": "categorical", "choices": [0.05, 0.0001]}},
        "n_trials": 6,
        "parallelism": 2,
        "sampler": "random",
        "pruner": "median",
        "seed": 2,
        "register_as": "iris-tuned",
    }
    tune = client.submit("tune", spec)
    done = client.wait(tune.id, timeout=600, poll=25)
    assert done.status == "succeeded", done.error
    trials = done.result["trials"]
    assert [trial["number"] for trial in trials] == list(range(6))
    states = {trial["state"] for trial in trials}
    assert states <= {"complete", "pruned"}
    pruned = [trial for trial in trials if trial["state"] == "pruned"]
    assert pruned, trials
    assert all(trial["epochs_run"] < 6 for trial in pruned)
    assert all(trial["params"]["learning_rate"] == 0.0001 for trial in pruned)
    assert done.result["best_params"] == {"learning_rate": 0.05}
    assert set(done.result["importances"]) == {"learning_rate"}
    assert done.result["model_name"] == "iris-tuned"
    assert done.children is not None
    assert done.children["succeeded"] == 6
    # The tuned version shares its trial's file: deleting the trials' model leaves that file to it.
    client.delete_model("iris-tuned-trials")
    predicted = client.run("predict", {"model": "iris-tuned", "inputs": ROWS[:2]}, timeout=300)
    assert predicted.status == "succeeded", predicted.error
    assert len(predicted.result["classes"]) == 2
    assert predicted.result["version"] == done.result["version"]
