"""One shape of a job: every route that answers with a job, and the webhook body, show exactly the keys of
``api.present.JOB_KEYS``; the response schema and the client's ``Job`` have a field for each of them."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import fields
from datetime import UTC, datetime

from api import present, responses
from api.present import HEAVY_FIELDS, JOB_KEYS
from db.database import Database
from db.records import JobRecord
from tensorq.client_types import Job
from tests.api.test_jobs_api import TRAIN
from tests.openapi_check import job_key_errors

RECORD = JobRecord(
    id="j1",
    tenant_id="t1",
    type="train",
    status="queued",
    spec={"architecture": "mlp", "dataset": "builtin:iris"},
    progress=None,
    result=None,
    error=None,
    priority=5,
    attempts=0,
    max_attempts=3,
    timeout_s=None,
    cancel_requested=False,
    revision=0,
    created_at=datetime(2026, 1, 2, tzinfo=UTC),
    started_at=None,
    finished_at=None,
    tags=["nightly"],
)


def _keras_zip() -> bytes:
    """A zip with the layout of a ``.keras`` file, as far as the API checks one (no import job runs here)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("metadata.json", "{}")
    return out.getvalue()


def test_every_route_answers_with_the_same_keys(client, auth) -> None:
    submitted = client.post("/v1/jobs", json={**TRAIN, "name": "n", "tags": ["a"]}, headers=auth)
    waited = client.post("/v1/jobs?wait=0.1", json=TRAIN, headers=auth)
    batch = client.post("/v1/jobs", json={"jobs": [TRAIN, TRAIN]}, headers=auth)
    uploaded = client.post(
        "/v1/models",
        data={"file": (io.BytesIO(_keras_zip()), "m.keras")},
        headers=auth,
        content_type="multipart/form-data",
    )
    job_id = submitted.get_json()["id"]
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    retried = client.post(f"/v1/jobs/{job_id}/retry", headers=auth)
    for answer in (submitted, waited, batch, uploaded, cancelled, retried):
        assert answer.status_code == 202, answer.get_json()
    read = client.get(f"/v1/jobs/{job_id}", headers=auth)
    listed = client.get("/v1/jobs?fields=all", headers=auth).get_json()["jobs"]
    answers = {
        "submit": submitted.get_json(),
        "submit?wait": waited.get_json(),
        "batch": batch.get_json()["jobs"][1],
        "upload": uploaded.get_json(),
        "cancel": cancelled.get_json(),
        "retry": retried.get_json(),
        "get": read.get_json(),
        **{f"list[{i}]": job for i, job in enumerate(listed)},
    }
    assert len(listed) == 6
    assert {name: sorted(job) for name, job in answers.items()} == {name: sorted(JOB_KEYS) for name in answers}
    summaries = client.get("/v1/jobs", headers=auth).get_json()["jobs"]
    assert {tuple(sorted(job)) for job in summaries} == {tuple(sorted(set(JOB_KEYS) - set(HEAVY_FIELDS)))}
    assert answers["retry"]["retry_of"] == job_id
    assert answers["submit"]["waiting_reason"] is None  # just queued: no worker is missed yet


def test_a_webhook_body_is_the_job_as_get_shows_it(client, auth, db: Database) -> None:
    job_id = client.post("/v1/jobs", json=TRAIN, headers=auth).get_json()["id"]
    client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    body = json.loads(present.notification(db.jobs.get_any(job_id)))
    assert list(body) == list(JOB_KEYS)
    assert body == client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()


def test_the_schema_and_the_client_have_a_field_for_every_key() -> None:
    assert list(present.job(RECORD)) == list(JOB_KEYS)
    for schema in (responses.TrainJob, responses.PredictJob, responses.ExplainJob, responses.ImportJob):
        assert set(schema.model_fields) == set(JOB_KEYS), schema
    assert set(responses.JobSummary.model_fields) == set(JOB_KEYS)
    assert {f.name for f in fields(Job)} == set(JOB_KEYS)
    shown = present.job(RECORD, "no live worker serves queue 'train'")
    parsed = Job.from_dict(shown)
    assert (parsed.waiting_reason, parsed.tags, parsed.created_at) == (
        shown["waiting_reason"],
        ["nightly"],
        RECORD.created_at,
    )


def test_the_document_check_names_a_job_without_a_key(app) -> None:
    document = app.extensions["tensorq.document_check"].document
    answers = document["paths"]["/v1/jobs"]["post"]["responses"]["202"]["content"]["application/json"]["schema"]
    page = document["paths"]["/v1/jobs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    whole = present.job(RECORD)
    short = {k: v for k, v in whole.items() if k != "waiting_reason"}
    summary = present.job(RECORD, without=HEAVY_FIELDS)
    assert job_key_errors(document, answers, whole, set()) == []
    assert job_key_errors(document, answers, {"jobs": [whole, whole]}, set()) == []
    missing = "job j1 (Job): missing keys ['waiting_reason'], extra keys []"
    assert job_key_errors(document, answers, short, set()) == [missing]
    assert job_key_errors(document, answers, {"jobs": [whole, short]}, set()) == [missing]
    assert job_key_errors(document, answers, {**whole, "lease_token": "x"}, set()) == [
        "job j1 (Job): missing keys [], extra keys ['lease_token']"
    ]
    assert job_key_errors(document, page, {"jobs": [summary], "next_cursor": None}, set()) == []
    assert job_key_errors(document, page, {"jobs": [summary], "next_cursor": None}, {"spec"}) == [
        "job j1 (JobSummary): missing keys ['spec'], extra keys []"
    ]
