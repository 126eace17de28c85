"""``tune`` jobs at submit on each database: the search space checked (422 naming the parameter), the study made
in its own storage, and the tune a parent of its first trials, train jobs."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from db.database import Database
from db.studies import storage
from tensorq.core.settings import Settings
from tests.conftest import RecordingPublisher, make_settings

TRAIN = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 3}
SPACE = {"learning_rate": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """At most 8 trials a tune."""
    return make_settings(tmp_path, database_url, max_tune_trials=8)


def _tune(**spec: object) -> dict:
    return {"type": "tune", "spec": {"train": TRAIN, "search_space": SPACE, "n_trials": 4, **spec}}


def test_a_tune_is_a_parent_of_its_first_trials_and_its_study_lives_apart(
    client, auth, db: Database, publisher: RecordingPublisher, settings: Settings
) -> None:
    space = {**SPACE, "params.dropout": {"type": "categorical", "choices": [0.0, 0.3]}}
    response = client.post("/v1/jobs", json=_tune(search_space=space, parallelism=2, seed=3), headers=auth)
    assert response.status_code == 202, response.get_json()
    tune = response.get_json()
    assert tune["type"] == "tune"
    assert tune["children"]["total"] == 4  # the trials planned; two made so far
    assert tune["spec"]["direction"] == "minimize"
    trials = client.get(f"/v1/jobs?parent={tune['id']}&fields=spec", headers=auth).get_json()["jobs"]
    assert sorted(job["spec"]["trial"]["number"] for job in trials) == [0, 1]
    assert {job["type"] for job in trials} == {"train"}
    assert sorted(publisher.published) == sorted(job["id"] for job in trials)
    for job in trials:
        point = job["spec"]["trial"]["params"]
        assert 0.001 <= point["learning_rate"] <= 0.1
        assert job["spec"]["learning_rate"] == point["learning_rate"]
        assert job["spec"]["params"]["dropout"] == point["params.dropout"]
        assert job["spec"]["register_as"] == "mlp-iris-trials"
    study = optuna.load_study(study_name=tune["spec"]["study"], storage=storage(settings.database_url))
    assert len(study.trials) == 2
    with db.engine.connect() as conn:  # Optuna's tables are not in TensorQ's schema
        names = set(db.engine.dialect.get_table_names(conn))
    assert "studies" not in names
    assert "jobs" in names


@pytest.mark.parametrize(
    ("space", "param"),
    [
        ({"params.colour": {"type": "categorical", "choices": ["red"]}}, "params.colour"),
        ({"momentum": {"type": "float", "low": 0.1, "high": 0.9}}, "momentum"),
        ({"params.dropout": {"type": "float", "low": 0.1, "high": 0.95}}, "params.dropout"),
        ({"learning_rate": {"type": "float", "low": 0.1, "high": 0.01}}, "learning_rate"),
        ({"batch_size": {"type": "int", "low": 0, "high": 64}}, "batch_size"),
    ],
)
def test_a_search_space_the_train_spec_refuses_is_a_422_naming_the_param(
    client, auth, publisher, space: dict, param: str
) -> None:
    response = client.post("/v1/jobs", json=_tune(search_space=space), headers=auth)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["details"]["param"] == param
    assert publisher.published == []


def test_n_trials_is_bounded_by_the_setting_and_a_trial_is_never_submitted(client, auth, publisher) -> None:
    response = client.post("/v1/jobs", json=_tune(n_trials=9), headers=auth)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["limit"] == 8
    trial = {"study": "x", "number": 0, "metric": "val_loss", "n_trials": 1}
    forged = client.post("/v1/jobs", json={"type": "train", "spec": {**TRAIN, "trial": trial}}, headers=auth)
    assert forged.status_code == 400
    assert publisher.published == []
