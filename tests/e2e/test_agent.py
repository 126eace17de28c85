"""An agent on real parts, on both databases: HTTP API -> SQL -> Redis -> a real worker process -> Gymnasium and
TensorFlow. A CartPole policy is trained (its mean return per iteration is the job's progress), registered as a
model version, then predicts actions for observations and explains the chosen action's logit; budgets out of
range are refused at submit with the field named."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.client_types import Job
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import make_settings
from tests.e2e.test_cli_jobs import tensorq
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# A small budget: a few iterations teach the policy to balance far longer than a random one (about 22 steps).
AGENT = {
    "architecture": "policy",
    "seed": 0,
    "learning_rate": 0.001,
    "register_as": "balancer",
    "environment": {"name": "CartPole-v1", "max_steps": 8192, "max_seconds": 300, "eval_episodes": 20},
}
# A pole falling to the right (positive angle, turning right): a trained policy pushes the cart right.
FALLING_RIGHT = [0.0, 0.0, 0.1, 0.5]
FALLING_LEFT = [0.0, 0.0, -0.1, -0.5]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A database, a Redis of its own, the API in a thread, one real worker, and a policy trained through them."""
    home = tmp_path_factory.mktemp(f"agent-{request.param}")
    admin, name = None, f"tensorq_agent_{uuid.uuid4().hex[:8]}"
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{home / 'tq.sqlite3'}"
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(home, url, broker_url=redis_server.url)
    upgrade(url)
    db = Database(settings)
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, home / "worker.log").start()
    wait_http(f"{api.url}/readyz")
    key = db.keys.create("acme")
    client = TensorQClient(api.url, key)
    try:
        trained = client.run("train", AGENT, timeout=600)
        assert trained.status == "succeeded", trained.error
        yield {"client": client, "trained": trained, "url": api.url, "key": key, "home": home}
    finally:
        client.close()
        worker.stop()
        api.stop()
        db.dispose()
        redis_server.stop()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        log = home / "worker.log"
        if log.exists():
            print(log.read_text()[-4000:])


def test_training_reports_returns_per_iteration_and_registers_the_policy(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    trained: Job = stack["trained"]
    result = trained.result
    metrics = result["metrics"]
    assert result["stopped_by"] == "max_steps"
    assert result["environment"] == "CartPole-v1"
    assert metrics["env_steps"] == 8192
    assert metrics["mean_return"] > 2 * metrics["random_return"]  # it learned to balance longer than chance
    returns = result["history"]["mean_return"]
    assert len(returns) == result["epochs_run"] == 8
    events = [e for e in client.events(trained.id) if e.kind == "progress"]
    assert [e.data["epoch"] for e in events] == list(range(1, 9))
    assert [e.data["mean_return"] for e in events] == pytest.approx(returns)
    assert trained.progress["epochs"] == 8
    model = client.model(result["model_id"])
    assert model.name == "balancer"
    version = model.versions[-1]
    assert version.signature["task"] == "reinforce"
    assert version.signature["class_names"] == ["push_left", "push_right"]


def test_predict_answers_actions_and_probabilities(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    done = client.run("predict", {"model": "balancer", "inputs": [FALLING_RIGHT, FALLING_LEFT]}, timeout=300)
    assert done.status == "succeeded", done.error
    result = done.result
    assert result["task"] == "reinforce"
    assert result["actions"] == [1, 0]
    assert result["action_names"] == ["push_right", "push_left"]
    probabilities = np.asarray(result["probabilities"])
    assert probabilities.shape == (2, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert probabilities[0, 1] > 0.5 > probabilities[1, 1]


def test_explain_attributes_the_chosen_actions_logit(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    spec = {"model": "balancer", "inputs": [FALLING_RIGHT, FALLING_LEFT], "method": "integrated_gradients"}
    done = client.run("explain", spec | {"steps": 128}, timeout=300)
    assert done.status == "succeeded", done.error
    result = done.result
    assert result["explained"] == "logit"
    assert result["targets"] == [1, 0]
    assert result["target_names"] == ["push_right", "push_left"]
    assert result["feature_names"][2:] == ["pole_angle", "pole_angular_velocity"]
    attributions = np.asarray(result["attributions"])
    assert attributions.shape == (2, 4)
    assert result["quality"]["completeness_gap"] < 0.05  # logits are smooth: the integral adds up
    assert np.all(attributions[:, 0:2] == 0.0)  # the baseline's zeros: cart features at zero add nothing
    shap = client.run("explain", spec | {"method": "kernel_shap"}, timeout=300)
    assert shap.status == "succeeded", shap.error
    assert "additivity_gap" in shap.result["quality"]


def test_budgets_out_of_range_are_refused_at_submit(stack: dict) -> None:
    headers = {"Authorization": f"Bearer {stack['key']}"}
    too_long = {**AGENT, "environment": {**AGENT["environment"], "max_steps": 10**9}}
    over_timeout = {"type": "train", "spec": AGENT, "timeout_s": 60}
    with httpx.Client(base_url=stack["url"], headers=headers) as http:
        answer = http.post("/v1/jobs", json={"type": "train", "spec": too_long})
        assert answer.status_code == 422
        assert answer.json()["error"]["details"][0]["field"] == "spec.environment.max_steps"
        answer = http.post("/v1/jobs", json=over_timeout)
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "budget_over_timeout"
        assert answer.json()["error"]["details"]["field"] == "spec.environment.max_seconds"
        answer = http.post("/v1/jobs", json={"type": "train", "spec": {**AGENT, "dataset": "builtin:iris"}})
        assert answer.status_code == 400


def test_the_cli_watches_an_agent_train_and_prints_its_actions(stack: dict) -> None:
    env = {"TENSORQ_URL": stack["url"], "TENSORQ_KEY": stack["key"]}
    spec = stack["home"] / "agent.json"
    budget = {"name": "CartPole-v1", "max_steps": 1024, "eval_episodes": 3}
    spec.write_text(json.dumps({**AGENT, "register_as": "cli-agent", "environment": budget}))
    trained = tensorq(["jobs", "submit", "train", "--spec", str(spec), "-p", "params.steps_per_iteration=512"], env)
    assert trained.returncode == 0, trained.stderr
    watched = tensorq(["jobs", "watch", trained.stdout.strip()], env)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    epochs = [line for line in watched.stdout.splitlines() if line.startswith("epoch ")]
    assert re.fullmatch(r"epoch 2/2  loss [0-9.]+  mean_return [0-9.]+  env_steps 1024  episodes \d+", epochs[-1])
    assert "stopped by max_steps" in watched.stdout.splitlines()[-1]
    observations = ["-p", f"inputs={json.dumps([FALLING_RIGHT, FALLING_LEFT])}", "-p", "model=balancer"]
    predicted = tensorq(["jobs", "submit", "predict", *observations, "--wait"], env)
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    assert "actions push_right, push_left" in predicted.stdout


def test_the_time_budget_holds_and_a_running_agent_cancels(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    # The training loop may use the whole 3 s only after the worker built the policy: the job's timeout_s (3 s
    # from its claim) always comes first, in the loop or in the evaluation after it.
    endless = {"name": "CartPole-v1", "max_steps": 5_000_000, "max_seconds": 3, "eval_episodes": 1000}
    timed = client.submit("train", {**AGENT, "register_as": "timed", "environment": endless}, timeout_s=3)
    timed = client.wait(timed.id, timeout=300)
    assert timed.status == "failed"
    assert timed.error.code == "timeout"
    long = {**AGENT, "register_as": "long", "environment": {**endless, "max_seconds": 600}}
    running = client.submit("train", long)
    while not (running.progress or {}).get("epoch"):
        running = client.job(running.id, wait=25)
        assert running.status in ("queued", "running"), running.error
    client.cancel(running.id)
    assert client.wait(running.id, timeout=300).status == "cancelled"
    assert [m.name for m in client.models()].count("long") == 0
