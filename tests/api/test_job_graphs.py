"""Jobs made of jobs over HTTP: a batch with a parent, the parent's counts and progress, ``?parent=``, cancel
that cascades and a retry that reruns only the failed children."""

from __future__ import annotations

from db.database import Database
from tests.api.test_jobs_api import TRAIN
from tests.conftest import RecordingPublisher


def _submit(client, auth, count: int = 3, **parent: object) -> dict:
    body = {"jobs": [{**TRAIN, "name": f"t{i}"} for i in range(count)], "parent": {"name": "sweep", **parent}}
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def test_a_batch_with_a_parent_answers_with_it_and_only_its_children_are_published(
    client, auth, publisher: RecordingPublisher
) -> None:
    answer = _submit(client, auth)
    parent, jobs = answer["parent"], answer["jobs"]
    assert parent["type"] == "group"
    assert parent["status"] == "queued"
    assert parent["children"] == {
        "total": 3,
        "queued": 3,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "max_failed_children": 0,
    }
    assert parent["spec"] == {"failure_policy": "fail_fast"}
    assert parent["progress"] == {"done": 0, "total": 3, "fraction": 0.0}
    assert {job["parent_id"] for job in jobs} == {parent["id"]}
    assert publisher.published == [job["id"] for job in jobs]
    listed = client.get(f"/v1/jobs?parent={parent['id']}", headers=auth).get_json()["jobs"]
    assert sorted(job["id"] for job in listed) == sorted(job["id"] for job in jobs)
    got = client.get(f"/v1/jobs/{parent['id']}", headers=auth).get_json()
    assert got["name"] == "sweep"
    assert got["children"]["queued"] == 3


def test_a_parent_with_a_refused_policy_or_unknown_key_is_refused_whole(client, auth, publisher) -> None:
    for parent, status in (
        ({"max_failed_children": -1}, 422),
        ({"max_failed_children": "some"}, 400),
        ({"colour": "red"}, 400),
    ):
        response = client.post("/v1/jobs", json={"jobs": [TRAIN], "parent": parent}, headers=auth)
        assert response.status_code == status, (parent, response.get_json())
    assert publisher.published == []


def test_cancel_cascades_and_retry_reruns_only_the_failed_children(client, auth, db: Database, publisher) -> None:
    answer = _submit(client, auth, max_failed_children=1)
    parent, jobs = answer["parent"], answer["jobs"]
    assert parent["children"]["max_failed_children"] == 1
    claim = db.jobs.claim(jobs[0]["id"], "w")
    assert claim is not None
    db.jobs.finish(jobs[0]["id"], claim.lease_token, {"ok": True})  # type: ignore[union-attr]
    cancelled = client.post(f"/v1/jobs/{parent['id']}/cancel", headers=auth)
    assert cancelled.status_code == 202
    assert cancelled.get_json()["status"] == "cancelled"
    assert [db.jobs.get_any(job["id"]).status for job in jobs] == ["succeeded", "cancelled", "cancelled"]
    assert client.post(f"/v1/jobs/{parent['id']}/cancel", headers=auth).status_code == 409
    published = len(publisher.published)
    retried = client.post(f"/v1/jobs/{parent['id']}/retry", headers=auth)
    assert retried.status_code == 202, retried.get_json()
    body = retried.get_json()
    assert body["id"] == parent["id"]
    assert body["status"] == "queued"
    assert body["children"]["queued"] == 2
    assert body["children"]["succeeded"] == 1
    again = publisher.published[published:]
    assert len(again) == 2
    retry_of = {client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["retry_of"] for job_id in again}
    assert retry_of == {jobs[1]["id"], jobs[2]["id"]}
    assert client.post(f"/v1/jobs/{parent['id']}/retry", headers=auth).status_code == 409  # it is queued again


def test_another_tenant_sees_neither_the_parent_nor_its_children(client, auth, other_auth) -> None:
    parent = _submit(client, auth, count=1)["parent"]
    assert client.get(f"/v1/jobs/{parent['id']}", headers=other_auth).status_code == 404
    assert client.get(f"/v1/jobs?parent={parent['id']}", headers=other_auth).get_json()["jobs"] == []
    assert client.post(f"/v1/jobs/{parent['id']}/cancel", headers=other_auth).status_code == 404
