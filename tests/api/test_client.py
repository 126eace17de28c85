"""The typed Python client against the real API (Flask app, real SQLite and Postgres) through httpx's WSGI transport."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from db.records import ModelVersionDraft
from tensorq import client_errors as errors
from tensorq.client import Dataset, Job, JobPage, TensorQClient

TRAIN = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2}


@pytest.fixture
def tq(app, key: str) -> Iterator[TensorQClient]:  # type: ignore[no-untyped-def]
    """The client of tenant 'acme' talking to the real app in this process."""
    with TensorQClient("http://localhost", key, transport=httpx.WSGITransport(app=app)) as client:
        yield client


def test_submit_get_list_cancel_return_typed_jobs(tq: TensorQClient, publisher) -> None:  # type: ignore[no-untyped-def]
    job = tq.submit("train", TRAIN, priority=3)
    assert isinstance(job, Job)
    assert (job.type, job.status, job.priority, job.error, job.finished) == ("train", "queued", 3, None, False)
    assert isinstance(job.created_at, datetime)
    assert job.created_at.tzinfo is not None
    assert publisher.published == [job.id]
    assert tq.job(job.id) == job
    page = tq.jobs(status="queued", limit=1)
    assert isinstance(page, JobPage)
    assert [j.id for j in page.jobs] == [job.id]
    cancelled = tq.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert cancelled.finished
    assert not cancelled.succeeded
    kinds = [(e.kind, e.to_status) for e in tq.events(job.id)]
    assert kinds == [("state", "queued"), ("state", "cancelled")]


def test_run_gets_a_short_jobs_end_from_its_submission(tq: TensorQClient, publisher, db) -> None:  # type: ignore[no-untyped-def]
    def finish_when_published() -> None:
        deadline = time.monotonic() + 10
        while not publisher.published and time.monotonic() < deadline:
            time.sleep(0.01)
        claim = db.jobs.claim(publisher.published[0], "w")
        draft = ModelVersionDraft("iris", "/nowhere/model.keras", "mlp", {}, {"input_shape": [4]})
        db.jobs.finish(claim.job.id, claim.lease_token, {"metrics": {}, "history": {}}, draft)

    worker = threading.Thread(target=finish_when_published)
    worker.start()
    job = tq.run("train", TRAIN, timeout=30)
    worker.join()
    assert (job.status, job.finished) == ("succeeded", True)
    assert tq.submit("train", TRAIN, wait=0.2).status == "queued"  # nothing runs it: as it is after the wait


def test_submit_many_returns_the_typed_jobs_in_order(tq: TensorQClient, publisher) -> None:  # type: ignore[no-untyped-def]
    batch = [{"type": "train", "spec": {**TRAIN, "epochs": n}} for n in (1, 2, 3)]
    jobs = tq.submit_many(batch, idempotency_key="b1")
    assert [j.spec["epochs"] for j in jobs] == [1, 2, 3]
    assert all(isinstance(j, Job) for j in jobs)
    assert publisher.published == [j.id for j in jobs]
    assert [j.id for j in tq.submit_many(batch, idempotency_key="b1")] == [j.id for j in jobs]
    with pytest.raises(errors.InvalidRequest) as bad:
        tq.submit_many([*batch, {"type": "train", "spec": {"architecture": "nope", "dataset": "builtin:iris"}}])
    assert bad.value.details["index"] == 3


def test_each_error_code_raises_its_own_class(tq: TensorQClient, app, db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(errors.NotFound) as missing:
        tq.job("0" * 32)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(errors.UnknownDataset) as unknown:
        tq.submit("train", {**TRAIN, "dataset": str(uuid.uuid4())})
    assert isinstance(unknown.value, errors.InvalidRequest)
    assert unknown.value.status == 400
    with pytest.raises(errors.OutOfRange):
        tq.jobs(limit=500)
    job = tq.submit("train", TRAIN)
    tq.cancel(job.id)
    with pytest.raises(errors.Conflict):
        tq.cancel(job.id)
    with pytest.raises(errors.IdempotencyMismatch):
        tq.submit("train", TRAIN, idempotency_key="k1")
        tq.submit("train", {**TRAIN, "epochs": 3}, idempotency_key="k1")
    with TensorQClient("http://localhost", "tq_bad", transport=httpx.WSGITransport(app=app)) as stranger:
        with pytest.raises(errors.Unauthorized):
            stranger.jobs()
    reader_key = db.keys.create("acme", read_only=True)
    with TensorQClient("http://localhost", reader_key, transport=httpx.WSGITransport(app=app)) as reader:
        assert reader.job(job.id).id == job.id
        with pytest.raises(errors.Forbidden):
            reader.submit("train", TRAIN)


def test_datasets_and_models_are_typed(tq: TensorQClient, tmp_path: Path) -> None:
    path = tmp_path / "points.npz"
    np.savez(path, x=np.random.default_rng(0).normal(size=(20, 3)).astype("float32"), y=np.arange(20) % 2)
    dataset = tq.upload_dataset(path, name="points")
    assert isinstance(dataset, Dataset)
    assert dataset.format == "npz"
    assert dataset.name == "points"
    assert [d.id for d in tq.datasets()] == [dataset.id]
    assert tq.dataset(dataset.id) == dataset
    assert tq.models() == []
    with pytest.raises(errors.NotFound):
        tq.model("0" * 32)


def test_a_table_dataset_shows_its_schema_and_first_rows(tq: TensorQClient, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("age,city,label\n30,Paris,yes\n,Lyon,no\n41,,yes\n")
    uploaded = tq.upload_dataset(path)
    shown = tq.dataset(uploaded.id)
    assert shown == uploaded
    assert [(c["name"], c["type"], c["missing"]) for c in shown.schema or []] == [
        ("age", "numeric", 1),
        ("city", "categorical", 1),
        ("label", "categorical", 0),
    ]
    assert shown.preview == {
        "columns": ["age", "city", "label"],
        "rows": [["30", "Paris", "yes"], [None, "Lyon", "no"], ["41", None, "yes"]],
    }
    assert tq.datasets()[0].schema is None  # listings stay light


class Refusing:
    """A WSGI app that answers ``status`` with ``Retry-After`` ``refusals`` times, then 200 with a job."""

    def __init__(self, status: int, refusals: int, retry_after: str = "2") -> None:
        self.status, self.refusals, self.retry_after, self.calls = status, refusals, retry_after, 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.calls += 1
        if self.calls <= self.refusals:
            body = {"error": {"code": "unavailable" if self.status == 503 else "quota_exceeded", "message": "later"}}
            start_response(
                f"{self.status} Busy", [("Content-Type", "application/json"), ("Retry-After", self.retry_after)]
            )
            return [json.dumps(body).encode()]
        job = {"id": "j1", "type": "train", "status": "queued", "created_at": "2026-01-01T00:00:00Z"}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(job).encode()]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_then_the_call_succeeds(status: int) -> None:
    server, slept = Refusing(status, refusals=2), []
    with TensorQClient("http://x", "k", transport=httpx.WSGITransport(app=server), sleep=slept.append) as client:
        assert client.job("j1").status == "queued"
    assert server.calls == 3
    assert slept == [2.0, 2.0]


def test_retries_are_bounded_and_each_wait_is_capped() -> None:
    server, slept = Refusing(503, refusals=10, retry_after="120"), []
    transport = httpx.WSGITransport(app=server)
    with TensorQClient("http://x", "k", transport=transport, sleep=slept.append, max_retry_wait=5) as client:
        with pytest.raises(errors.Unavailable) as refused:
            client.job("j1")
    assert server.calls == 4
    assert slept == [5, 5, 5]
    assert refused.value.retry_after == 120.0


def test_an_unknown_code_maps_by_status_and_a_dead_server_is_a_transport_error() -> None:
    unknown = errors.error_for(409, "some_new_code", "m")
    assert type(unknown) is errors.Conflict
    assert unknown.code == "some_new_code"
    assert type(errors.error_for(418, "teapot", "m")) is errors.APIError
    with TensorQClient("http://127.0.0.1:9", "k", timeout=2) as client:
        with pytest.raises(errors.TransportError):
            client.job("j1")


def test_webhooks_and_the_retry_policy_through_the_client(tq: TensorQClient, settings) -> None:  # type: ignore[no-untyped-def]
    from tensorq.client import WebhookSecret

    settings.webhook_allowed_hosts = ["127.0.0.1"]
    with pytest.raises(errors.OutOfRange) as missing:
        tq.submit("train", TRAIN, callback_url="http://127.0.0.1:9/hook")
    assert missing.value.code == "webhook_secret_missing"
    secret = tq.rotate_webhook_secret()
    assert isinstance(secret, WebhookSecret)
    assert secret.secret.startswith("whsec_")
    assert secret.secret not in repr(secret)
    job = tq.submit("train", TRAIN, name="n", tags=["t"], callback_url="http://127.0.0.1:9/hook", max_retries=2)
    assert (job.callback_url, job.max_retries, job.retry_number) == ("http://127.0.0.1:9/hook", 2, 0)
    assert tq.webhook_deliveries(job.id) == []
    tq.cancel(job.id)
    (delivery,) = tq.webhook_deliveries(job.id)
    assert (delivery.event, delivery.status, delivery.attempts) == ("job.cancelled", "pending", 0)
    with pytest.raises(errors.OutOfRange) as internal:
        tq.submit("train", TRAIN, callback_url="http://10.0.0.1/hook")
    assert internal.value.code == "callback_url_forbidden"
