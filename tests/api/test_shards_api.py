"""Sharded predict and explain at submit: the parent and its row-range children, the limits, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.database import Database
from db.shards import join
from tensorq.core.settings import Settings
from tests.api.test_jobs_api import _register_model
from tests.conftest import RecordingPublisher, make_settings

ROWS = [[float(i), 1.0, 2.0, 3.0] for i in range(7)]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Shards of 3 rows at most; at most 3 shards."""
    return make_settings(tmp_path, database_url, shard_rows=3, max_shards=3)


def test_more_rows_than_shard_rows_make_a_parent_with_one_child_per_range(
    client, auth, db: Database, publisher: RecordingPublisher
) -> None:
    model = _register_model(db)
    response = client.post("/v1/jobs", json={"type": "predict", "spec": {"model": model, "inputs": ROWS}}, headers=auth)
    assert response.status_code == 202, response.get_json()
    parent = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{parent['id']}"
    assert parent["type"] == "predict"
    assert parent["spec"]["shards"] == 3
    assert parent["children"]["total"] == 3
    children = client.get(f"/v1/jobs?parent={parent['id']}&fields=spec", headers=auth).get_json()["jobs"]
    by_shard = sorted(children, key=lambda job: job["spec"]["shard"])
    assert [job["spec"]["inputs"] for job in by_shard] == [ROWS[0:2], ROWS[2:5], ROWS[5:7]]
    assert all("shards" not in job["spec"] for job in children)
    assert sorted(publisher.published) == sorted(job["id"] for job in children)  # never the parent
    few = client.post("/v1/jobs", json={"type": "predict", "spec": {"model": model, "inputs": ROWS[:3]}}, headers=auth)
    assert few.get_json()["children"] is None


def test_shards_asked_for_are_bounded_and_refused_where_rows_do_not_explain_alone(client, auth, db: Database) -> None:
    model = _register_model(db)
    asked = {"type": "predict", "spec": {"model": model, "inputs": ROWS[:2], "shards": 2}}
    response = client.post("/v1/jobs", json=asked, headers=auth)
    assert response.status_code == 202
    assert response.get_json()["children"]["total"] == 2
    too_many = {"type": "predict", "spec": {"model": model, "inputs": ROWS, "shards": 4}}
    refused = client.post("/v1/jobs", json=too_many, headers=auth)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"]["limit"] == 3
    smooth = {"type": "explain", "spec": {"model": model, "inputs": ROWS, "method": "smoothgrad", "shards": 2}}
    assert client.post("/v1/jobs", json=smooth, headers=auth).status_code == 400
    in_batch = client.post("/v1/jobs", json={"jobs": [asked]}, headers=auth)
    assert in_batch.status_code == 400
    assert in_batch.get_json()["error"]["details"]["index"] == 0


def test_the_shards_results_join_in_row_order() -> None:
    parts = [
        (
            "a",
            {
                "task": "classify",
                "rows": 2,
                "outputs": [[1.0], [2.0]],
                "metrics": {"accuracy": 1.0, "labelled_rows": 2},
            },
        ),
        ("b", {"task": "classify", "rows": 1, "outputs": [[3.0]], "metrics": {"accuracy": 0.0, "labelled_rows": 1}}),
    ]
    joined = join("predict", parts)
    assert joined == {
        "task": "classify",
        "rows": 3,
        "outputs": [[1.0], [2.0], [3.0]],
        "metrics": {"accuracy": 0.666667, "labelled_rows": 3},
    }
    explained = join(
        "explain",
        [
            ("a", {"method": "lime", "targets": [0], "attributions": [[0.1]], "quality": {"fit": 0.9}}),
            (
                "b",
                {
                    "method": "lime",
                    "targets": [2],
                    "attributions": [[0.2]],
                    "quality": {"fit": 0.7},
                    "artifacts": ["h"],
                },
            ),
        ],
    )
    assert explained["targets"] == [0, 2]
    assert explained["quality"] == {"fit": 0.7}
    assert explained["parts"] == [{"job_id": "a", "artifacts": []}, {"job_id": "b", "artifacts": ["h"]}]
