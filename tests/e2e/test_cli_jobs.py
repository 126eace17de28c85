"""The client-side ``tensorq`` commands run as a user runs them, against a real stack: the API, a real worker
process, a Redis of its own and a SQLite database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import make_settings
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
IRIS = ["-p", "architecture=mlp", "-p", "dataset=builtin:iris", "-p", "seed=1"]


def tensorq(
    args: list[str], env: dict[str, str], timeout: float = 300, tty: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``tensorq ARGS`` in a fresh process; ``tty`` makes rich draw as on a terminal."""
    extra = {"TTY_COMPATIBLE": "1", "COLUMNS": "160"} if tty else {"TTY_COMPATIBLE": "0"}
    return subprocess.run(
        [sys.executable, "-m", "tensorq.cli", *args],
        env={**os.environ, **env, **extra},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """SQLite, a Redis of its own, the API in a thread and one real worker; the CLI's env points at it."""
    home = tmp_path_factory.mktemp("cli")
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(home, f"sqlite:///{home / 'tq.sqlite3'}", broker_url=redis_server.url, max_inline_rows=5)
    upgrade(settings.database_url)
    db = Database(settings)
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, home / "worker.log").start()
    wait_http(f"{api.url}/readyz")
    env = {"TENSORQ_URL": api.url, "TENSORQ_KEY": db.keys.create("acme")}
    try:
        yield {"env": env, "home": home, "db": db, "url": api.url, "other_key": db.keys.create("other")}
    finally:
        worker.stop()
        api.stop()
        db.dispose()
        redis_server.stop()


@pytest.fixture(scope="module")
def trained(stack: dict) -> str:
    """A training job followed by ``watch`` as plain text (stdout is a pipe): returns its id."""
    submitted = tensorq(["jobs", "submit", "train", *IRIS, "-p", "epochs=4"], stack["env"])
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    watched = tensorq(["jobs", "watch", job_id], stack["env"])
    assert watched.returncode == 0, watched.stdout + watched.stderr
    lines = watched.stdout.splitlines()
    assert [line for line in lines if line.startswith("epoch ")][-1].startswith("epoch 4/4  loss ")
    assert f"train {job_id}: running" in lines
    assert "succeeded" in lines[-1]
    return job_id


def test_version() -> None:
    result = tensorq(["--version"], {})
    assert result.returncode == 0
    assert result.stdout.strip() == "tensorq, version 0.1.0"


def test_watch_a_training_job_with_a_progress_bar_to_exit_0(stack: dict, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"architecture": "mlp", "dataset": "builtin:iris", "epochs": 5, "seed": 2}))
    result = tensorq(
        ["jobs", "submit", "train", "--spec", str(spec), "-p", "batch_size=16", "--wait"], stack["env"], tty=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    screen = ANSI.sub("", result.stdout)
    assert "5/5 epochs" in screen
    assert "━" in screen
    assert "loss " in screen
    assert "\x1b[" in result.stdout
    job_id = screen.splitlines()[0].strip()
    got = json.loads(tensorq(["jobs", "get", job_id], stack["env"]).stdout)
    assert got["status"] == "succeeded"
    assert got["spec"]["batch_size"] == 16
    assert got["spec"]["epochs"] == 5


def test_get_and_list_as_json_and_as_a_table(stack: dict, trained: str) -> None:
    got = json.loads(tensorq(["jobs", "get", trained], stack["env"]).stdout)
    assert got["id"] == trained
    assert got["status"] == "succeeded"
    assert len(got["result"]["history"]["loss"]) == 4
    listed = json.loads(
        tensorq(["jobs", "list", "--status", "succeeded", "--type", "train", "--json"], stack["env"]).stdout
    )
    assert trained in [j["id"] for j in listed["jobs"]]
    assert all(j["status"] == "succeeded" for j in listed["jobs"])
    table = tensorq(["jobs", "list", "--since", "1h"], stack["env"]).stdout.splitlines()
    assert table[0].split("\t")[:3] == ["id", "type", "status"]
    assert any(line.startswith(f"{trained}\ttrain\tsucceeded\t4/4") for line in table)
    future = tensorq(["jobs", "list", "--since", "2999-01-01", "--json"], stack["env"]).stdout
    assert json.loads(future)["jobs"] == []
    paged = tensorq(["jobs", "list", "--limit", "1"], stack["env"])
    assert len(paged.stdout.splitlines()) == 2
    assert "more: --cursor " in paged.stderr


def test_models_list_get_download_and_upload_again(stack: dict, trained: str, tmp_path: Path) -> None:
    env = stack["env"]
    model_id = json.loads(tensorq(["jobs", "get", trained], env).stdout)["result"]["model_id"]
    models = json.loads(tensorq(["models", "list", "--json"], env).stdout)
    assert model_id in [m["id"] for m in models]
    model = json.loads(tensorq(["models", "get", model_id, "--json"], env).stdout)
    assert trained in [v["training_job_id"] for v in model["versions"]]
    assert trained in tensorq(["models", "get", model_id], env).stdout
    target = tmp_path / "iris.keras"
    downloaded = tensorq(["models", "download", model_id, "-o", str(target)], env)
    assert downloaded.returncode == 0
    assert target.read_bytes()[:2] == b"PK"
    uploaded = tensorq(["models", "upload", str(target), "--name", "iris-again", "--wait"], env)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    names = [m["name"] for m in json.loads(tensorq(["models", "list", "--json"], env).stdout)]
    assert "iris-again" in names


def test_predict_artifacts_list_and_download(stack: dict, trained: str, tmp_path: Path) -> None:
    env = stack["env"]
    model_id = json.loads(tensorq(["jobs", "get", trained], env).stdout)["result"]["model_id"]
    rows = json.dumps([[5.1, 3.5, 1.4, 0.2]] * 8)
    submitted = tensorq(["jobs", "submit", "predict", "-p", f"model={model_id}", "-p", f"inputs={rows}", "--wait"], env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.splitlines()[0]
    assert tensorq(["jobs", "artifacts", job_id], env).stdout.split() == ["predictions.csv"]
    target = tmp_path / "p.csv"
    fetched = tensorq(["jobs", "artifacts", job_id, "predictions.csv", "-o", str(target)], env)
    assert fetched.returncode == 0
    assert len(target.read_text().strip().splitlines()) == 9


def test_submit_many_queues_a_batch_and_prints_the_ids_in_order(stack: dict, trained: str, tmp_path: Path) -> None:
    env = stack["env"]
    model_id = json.loads(tensorq(["jobs", "get", trained], env).stdout)["result"]["model_id"]
    lines = [{"type": "predict", "spec": {"model": model_id, "inputs": [[5.1, 3.5, 1.4, x]]}} for x in (0.1, 0.2, 0.3)]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    submitted = tensorq(["jobs", "submit-many", str(batch)], env)
    assert submitted.returncode == 0, submitted.stderr
    ids = submitted.stdout.split()
    assert len(ids) == 3
    for job_id, line in zip(ids, lines, strict=True):
        assert tensorq(["jobs", "watch", job_id], env).returncode == 0
        assert json.loads(tensorq(["jobs", "get", job_id], env).stdout)["spec"]["inputs"] == line["spec"]["inputs"]


def test_a_failed_job_exits_1_with_its_code_and_message(stack: dict, tmp_path: Path) -> None:
    env = stack["env"]
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,label\n1,x,0\n2,y,0\n")  # one class: refused by the worker, not at submit
    dataset_id = tensorq(["datasets", "upload", str(csv), "--name", "bad"], env).stdout.strip()
    listed = json.loads(tensorq(["datasets", "list", "--json"], env).stdout)
    assert {"id": dataset_id, "name": "bad", "format": "csv"}.items() <= next(
        d for d in listed if d["id"] == dataset_id
    ).items()
    shown = json.loads(tensorq(["datasets", "get", dataset_id, "--json"], env).stdout)
    assert [(c["name"], c["type"]) for c in shown["schema"]] == [
        ("a", "numeric"),
        ("b", "categorical"),
        ("label", "numeric"),
    ]
    assert shown["preview"]["rows"] == [["1", "x", "0"], ["2", "y", "0"]]
    table = tensorq(["datasets", "get", dataset_id], env).stdout
    assert "categorical" in table
    assert "missing" in table
    spec = ["-p", "architecture=mlp", "-p", f"dataset={dataset_id}", "-p", "label_column=label", "-p", "epochs=1"]
    result = tensorq(["jobs", "submit", "train", *spec, "-p", "validation_split=0", "--wait"], env)
    assert result.returncode == 1
    assert "failed (while building): invalid_request: " in result.stderr
    assert "two classes" in result.stderr
    job_id = result.stdout.splitlines()[0]
    logs = tensorq(["jobs", "logs", job_id], env)
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert "[1] worker.runner: train job " in lines[0]
    assert any(line.endswith("worker.joblog: phase: loading data") for line in lines)
    failure = next(line for line in lines if " ERROR " in line)
    assert "failed while building: invalid_request" in failure
    assert "two classes" in failure
    assert str(stack["home"]) not in logs.stdout
    assert f"[job {job_id}] worker.outcome: failed while building" in (stack["home"] / "worker.log").read_text()
    as_json = [json.loads(line) for line in tensorq(["jobs", "logs", job_id, "--json"], env).stdout.splitlines()]
    assert [line["message"] for line in as_json] == [line.split(": ", 1)[1] for line in lines]


def test_logs_follow_a_training_job_to_its_end(stack: dict, trained: str) -> None:
    followed = tensorq(["jobs", "logs", trained, "--follow"], stack["env"], timeout=120)
    assert followed.returncode == 0, followed.stderr
    text = followed.stdout
    for phase in ("loading data", "building", "epoch 1", "epoch 4", "saving"):
        assert f"phase: {phase}" in text
    assert "worker.handlers: epoch 4/4  " in text
    assert "shap" not in text
    other = tensorq(["jobs", "logs", trained], {**stack["env"], "TENSORQ_KEY": stack["other_key"]})
    assert other.returncode == 1
    assert "not_found" in other.stderr


def test_the_worker_is_in_view_with_the_job_it_runs_and_cancel_makes_watch_exit_3(stack: dict) -> None:
    env = stack["env"]
    spec = ["-p", "architecture=mlp", "-p", "dataset=builtin:breast_cancer", "-p", "epochs=5000", "-p", "batch_size=8"]
    job_id = tensorq(["jobs", "submit", "train", *spec], env).stdout.strip()
    with TensorQClient(env["TENSORQ_URL"], env["TENSORQ_KEY"]) as client:
        deadline = time.monotonic() + 120
        while client.job(job_id, wait=5).status != "running" and time.monotonic() < deadline:
            pass
        deadline = time.monotonic() + 30  # the worker reports its job at once; allow a heartbeat
        while not [w for w in client.workers() if w.current_job == job_id] and time.monotonic() < deadline:
            time.sleep(0.5)
    workers = json.loads(tensorq(["workers", "--json"], env).stdout)
    assert len(workers) == 1, workers
    worker = workers[0]
    assert worker["current_job"] == job_id
    assert worker["busy"] is True
    assert worker["version"] == "0.1.0"
    assert worker["queues"] == ["train", "predict", "explain"]
    assert worker["gpu"] is None
    assert worker["name"].startswith("tensorq-")
    assert worker["host"]
    theirs = json.loads(tensorq(["workers", "--json"], {**env, "TENSORQ_KEY": stack["other_key"]}).stdout)
    assert theirs[0]["busy"] is True
    assert theirs[0]["current_job"] is None
    queues = {q["name"]: q for q in json.loads(tensorq(["queues", "--json"], env).stdout)}
    assert queues["train"]["running"] == 1
    assert queues["train"]["live_workers"] == 1
    table = tensorq(["workers"], env).stdout.splitlines()
    assert table[0].startswith("name\thost\tgpu\tqueues")
    assert job_id in table[1]
    cancelled = tensorq(["jobs", "cancel", job_id], env)
    assert cancelled.returncode == 0
    assert job_id in cancelled.stdout
    watched = tensorq(["jobs", "watch", job_id, "--timeout", "120"], env)
    assert watched.returncode == 3
    assert "cancelled" in watched.stderr


def test_api_errors_are_one_line_and_exit_1(stack: dict) -> None:
    bad_key = tensorq(["jobs", "list"], {**stack["env"], "TENSORQ_KEY": "tq_nope"})
    assert bad_key.returncode == 1
    assert bad_key.stderr.startswith("Error: unauthorized: ")
    missing = tensorq(["jobs", "get", "0" * 32], stack["env"])
    assert missing.returncode == 1
    assert "not_found" in missing.stderr
    bad_param = tensorq(["jobs", "submit", "train", "-p", "epochs"], stack["env"])
    assert bad_param.returncode == 2
    assert "key=value" in bad_param.stderr
    refused = tensorq(
        ["jobs", "submit", "train", "-p", "architecture=nope", "-p", "dataset=builtin:iris"], stack["env"]
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: ")
    assert "nope" in refused.stderr
    no_server = tensorq(["jobs", "list", "--url", "http://127.0.0.1:9"], stack["env"])
    assert no_server.returncode == 1
    assert "TransportError" in no_server.stderr


def test_alias_retry_and_delete_through_the_cli(stack: dict, trained: str) -> None:
    env = stack["env"]
    result = json.loads(tensorq(["jobs", "get", trained], env).stdout)["result"]
    name = json.loads(tensorq(["models", "get", result["model_id"], "--json"], env).stdout)["name"]
    moved = tensorq(["models", "alias", name, "production", str(result["version"])], env)
    assert moved.returncode == 0
    assert f"{name}@production -> version {result['version']}" in moved.stdout
    assert f"production -> v{result['version']}" in tensorq(["models", "get", name], env).stdout
    predicted = tensorq(
        ["jobs", "submit", "predict", "-p", f"model={name}@production", "-p", "inputs=[[5.1,3.5,1.4,0.2]]", "--wait"],
        env,
    )
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    spec = ["-p", "architecture=mlp", "-p", "dataset=builtin:iris", "-p", "epochs=5000"]
    job_id = tensorq(["jobs", "submit", "train", *spec, "--name", "long one", "--tag", "long"], env).stdout.strip()
    tagged = json.loads(tensorq(["jobs", "list", "--tag", "long", "--json"], env).stdout)["jobs"]
    assert [(j["id"], j["name"], j["tags"]) for j in tagged] == [(job_id, "long one", ["long"])]
    tensorq(["jobs", "cancel", job_id], env)
    assert tensorq(["jobs", "watch", job_id, "--timeout", "120"], env).returncode == 3
    retried = json.loads(tensorq(["jobs", "retry", job_id, "--json"], env).stdout)
    assert retried["retry_of"] == job_id
    assert retried["id"] != job_id
    tensorq(["jobs", "cancel", retried["id"]], env)
    assert tensorq(["jobs", "watch", retried["id"], "--timeout", "120"], env).returncode == 3
    deleted = tensorq(["jobs", "delete", job_id], env)
    assert deleted.returncode == 0
    assert f"deleted job {job_id}" in deleted.stdout
    assert tensorq(["jobs", "get", job_id], env).returncode == 1
