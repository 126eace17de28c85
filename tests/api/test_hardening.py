"""Hostile inputs, outages and races: every one answers a 4xx or a 503 with a code, never a 500."""

from __future__ import annotations

import io
import json
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from api.uploads import describe_npz
from api.wait_slots import WaitSlots
from db.database import Database
from db.jobs import ModelVersionDraft, NewJob
from tests.storage import read_only


def _npz(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _upload(client, auth, payload: bytes, filename: str = "data.npz"):  # type: ignore[no-untyped-def]
    data = {"file": (io.BytesIO(payload), filename)}
    return client.post("/v1/datasets", data=data, headers=auth, content_type="multipart/form-data")


@pytest.fixture
def model_id(db: Database, settings) -> str:  # type: ignore[no-untyped-def]
    """A registered classifier of tenant 'acme' taking 4 features."""
    tenant = db.keys.ensure_tenant("acme")
    job = db.jobs.submit(NewJob(tenant, "train", {"architecture": "mlp", "dataset": "builtin:iris"})).job
    claim = db.jobs.claim(job.id, "w")
    assert claim is not None
    model_file = Path(settings.artifact_dir) / "m.keras"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model_file.write_bytes(b"PK fake")
    signature = {"input_shape": [4], "task": "classify"}
    db.jobs.finish(job.id, claim.lease_token, {}, ModelVersionDraft("m", str(model_file), "mlp", {}, signature))
    return db.jobs.get_any(job.id).result["model_id"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs/x%00"),
        ("GET", "/v1/jobs/x%00/events"),
        ("POST", "/v1/jobs/x%00/cancel"),
        ("GET", "/v1/jobs/x/artifacts/a%00.png"),
        ("GET", "/v1/models/x%00"),
        ("GET", "/v1/models/x%00/download"),
        ("GET", "/v1/datasets/x%00"),
        ("GET", "/v1/jobs?cursor=a%00b"),
    ],
)
def test_a_nul_in_any_id_or_cursor_is_400(client, auth, method: str, path: str) -> None:
    response = client.open(path, method=method, headers=auth)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_characters"


def test_a_nul_in_a_form_field_is_400(client, auth) -> None:
    data = {"file": (io.BytesIO(b"a,b\n1,2\n"), "d.csv"), "name": "bad\x00name"}
    response = client.post("/v1/datasets", data=data, headers=auth, content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_characters"


@pytest.mark.parametrize("version", ["%C2%B2", "99999999999", "-1", "0", "1:2"])
def test_versions_that_are_not_small_ascii_integers_are_400(client, auth, model_id: str, version: str) -> None:
    response = client.get(f"/v1/models/{model_id}/download?version={version}", headers=auth)
    assert response.status_code == 400, response.get_json()


@pytest.mark.parametrize(
    "body",
    [
        "[" * 1000 + "]" * 1000,
        json.dumps({"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris"}})[:-2]
        + ', "params": '
        + '{"a": ' * 300
        + "1"
        + "}" * 300
        + "}}",
        '{"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris", "model_name": "a\\u0000b"}}',
    ],
    ids=["1000-brackets", "300-levels-in-params", "nul-in-a-string"],
)
def test_deep_or_nul_json_bodies_are_400(client, auth, body: str) -> None:
    response = client.post("/v1/jobs", data=body, headers=auth, content_type="application/json")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] in ("too_deep", "invalid_characters")


def test_a_deeply_nested_jsonl_first_line_is_400(client, auth) -> None:
    line = '{"text": "a", "label": 1, "x": ' + "[" * 500 + "]" * 500 + "}\n"
    response = _upload(client, auth, line.encode(), "t.jsonl")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "too_deep"


@pytest.mark.parametrize(
    ("spec", "status", "code"),
    [
        ({"architecture": "mlp", "dataset": "builtin:iris", "params": {"hidden": [8] * 33}}, 422, "out_of_range"),
        ({"architecture": "mlp", "dataset": "builtin:iris", "params": {"hidden": [10**6]}}, 422, "out_of_range"),
        ({"architecture": "mlp", "dataset": "builtin:iris", "params": {"units": 3}}, 400, "invalid_request"),
        ({"architecture": "cnn", "dataset": "builtin:iris"}, 400, "data_does_not_fit"),
        ({"architecture": "rnn", "dataset": "builtin:wine"}, 400, "data_does_not_fit"),
        ({"architecture": "mlp", "dataset": "../../etc/passwd"}, 400, "invalid_request"),
    ],
)
def test_train_specs_the_worker_would_refuse_are_refused_at_submit(
    client, auth, spec: dict, status: int, code: str
) -> None:
    response = client.post("/v1/jobs", json={"type": "train", "spec": spec}, headers=auth)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("job_type", "spec", "status"),
    [
        ("predict", {"dataset": "builtin:../../etc/passwd"}, 400),
        ("predict", {"inputs": [[1e39, 0, 0, 0]]}, 422),
        ("predict", {"user": "u1"}, 400),
        ("explain", {"inputs": [[1, 2, 3, 4]], "target": 10**30}, 422),
        ("explain", {"inputs": [[1, 2, 3, 4]], "method": "kernel_shap", "background": [[1, 2, 3, float("nan")]]}, 400),
    ],
    ids=["builtin-path", "beyond-float32", "user-on-a-classifier", "huge-target", "nan-background"],
)
def test_predict_and_explain_specs_the_worker_would_refuse_are_refused_at_submit(
    client, auth, model_id: str, job_type: str, spec: dict, status: int
) -> None:
    body = json.dumps({"type": job_type, "spec": {"model": model_id, **spec}}).replace("NaN", "NaN")
    response = client.post("/v1/jobs", data=body, headers=auth, content_type="application/json")
    assert response.status_code == status, response.get_json()


def test_npz_members_that_are_not_arrays_or_claim_too_much_are_refused(client, auth, settings) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", b"hello")
        archive.writestr("y.npy", b"hello")
    assert _upload(client, auth, buffer.getvalue()).status_code == 400

    header = np.lib.format
    huge = io.BytesIO()
    header.write_array_header_1_0(huge, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", huge.getvalue())
        archive.writestr("y.npy", huge.getvalue())
    response = _upload(client, auth, buffer.getvalue())
    assert response.status_code == 400, response.get_json()  # the header declares far more than the member holds

    settings.max_dataset_array_bytes = 1_000_000
    response = _upload(client, auth, _npz(x=np.zeros((2000, 100)), y=np.zeros(2000)))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "npz_too_large"
    assert [p for p in Path(settings.artifact_dir).rglob("*") if p.is_file()] == []


def test_an_npz_with_no_rows_is_400(client, auth) -> None:
    response = _upload(client, auth, _npz(x=np.zeros((0, 3)), y=np.zeros(0)))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "empty_dataset"


def test_checking_a_decompression_bomb_keeps_memory_bounded(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((4096, 8192), dtype=np.float64), y=np.zeros(4096))  # 256 MiB of zeros
    assert path.stat().st_size < 2 * 1024 * 1024
    tracemalloc.start()
    try:
        info = describe_npz(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info["x_shape"] == [4096, 8192]
    assert peak < 32 * 1024 * 1024, peak  # the chunk size, not the array


def test_a_down_rate_limiter_store_is_503_with_retry_after(tmp_path, settings, db, publisher, auth) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, settings.database_url, ratelimit_storage_url="redis://127.0.0.1:1/0")
    client = create_app(settings, database=db, publisher=publisher).test_client()
    body = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris"}}
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    upload = {"file": (io.BytesIO(b"PK\x03\x04"), "m.keras")}
    response = client.post("/v1/models", data=upload, headers=auth, content_type="multipart/form-data")
    assert response.status_code == 503
    assert response.headers["Retry-After"]


@pytest.fixture
def read_only_datasets(settings) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """The tenant dataset folders refusing every write (a read-only mount as root, no write permission otherwise)."""
    folder = Path(settings.artifact_dir) / "datasets"
    with read_only(folder):
        yield folder


def test_a_read_only_store_is_503_without_server_paths(client, auth, read_only_datasets, settings) -> None:
    response = _upload(client, auth, b"a,b\n1,2\n", "d.csv")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == "storage_unavailable"
    assert str(settings.artifact_dir) not in response.get_data(as_text=True)


def _in_parallel(count: int, call) -> list[int]:  # type: ignore[no-untyped-def]
    statuses: list[int] = []
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        statuses.append(call())

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_the_queued_jobs_quota_holds_under_parallel_submissions(app, auth, db, settings) -> None:
    settings.quota_queued_jobs = 5
    body = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris"}}
    statuses = _in_parallel(25, lambda: app.test_client().post("/v1/jobs", json=body, headers=auth).status_code)
    assert sorted(statuses) == [202] * 5 + [429] * 20
    assert db.jobs.count_queued(db.keys.ensure_tenant("acme")) == 5


def test_the_dataset_quota_holds_under_parallel_uploads(app, auth, db, settings) -> None:
    settings.quota_dataset_bytes = 20_000
    csv = b"a,b\n" + b"1,2\n" * 750  # 3004 bytes

    def upload() -> int:
        return _upload(app.test_client(), auth, csv, "d.csv").status_code

    statuses = _in_parallel(20, upload)
    assert statuses.count(201) == 6
    assert statuses.count(413) == 14
    stored = sum(d.size_bytes for d in db.datasets.list(db.keys.ensure_tenant("acme")))
    assert stored <= 20_000


def test_a_chunked_upload_counts_the_bytes_written(client, auth, settings) -> None:
    settings.quota_dataset_bytes = 50_000
    boundary = "b0undary"
    csv = b"a,b\n" + b"1,2\n" * 25_000  # 100 KB
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + csv
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/v1/datasets",
        input_stream=io.BytesIO(body),
        headers={**auth, "Transfer-Encoding": "chunked"},
        content_type=f"multipart/form-data; boundary={boundary}",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413, response.get_json()
    assert response.get_json()["error"]["code"] == "storage_quota_exceeded"


def _low_wait_slots(app) -> WaitSlots:  # type: ignore[no-untyped-def]
    """The fairness guard set low, as an operator may (the defaults: 512 per tenant, 2048 per process, 64 kept)."""
    default = app.extensions["tensorq"].wait_slots
    assert (default.per_tenant, default.total, default.shared) == (512, 2048, 1984)
    app.extensions["tensorq"].wait_slots = WaitSlots(4, 12, 4)
    return app.extensions["tensorq"].wait_slots


def test_long_polls_are_capped_per_tenant_and_leave_threads_for_others(app, auth, other_auth, db) -> None:
    tenant = db.keys.ensure_tenant("acme")
    job_id = db.jobs.submit(NewJob(tenant, "train", {"architecture": "mlp", "dataset": "builtin:iris"})).job.id
    slots = _low_wait_slots(app)
    url = f"/v1/jobs/{job_id}?wait=3&until=finished"
    waiting = [
        threading.Thread(target=lambda: app.test_client().get(url, headers=auth)) for _ in range(slots.per_tenant)
    ]
    for thread in waiting:
        thread.start()
    deadline = time.monotonic() + 5
    while slots._held.get(tenant, 0) < slots.per_tenant and time.monotonic() < deadline:
        time.sleep(0.01)
    client = app.test_client()
    refused = client.get(url, headers=auth)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.get_json()["error"]["code"] == "too_many_waits"
    assert client.get(f"/v1/jobs/{job_id}", headers=auth).status_code == 200  # a plain read holds no slot
    assert client.get("/v1/jobs", headers=other_auth).status_code == 200
    assert client.get("/healthz").status_code == 200
    # A submission that asks to wait is accepted all the same: it answers at once, with the job queued.
    body = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris"}}
    accepted = client.post("/v1/jobs?wait=3", json=body, headers=auth)
    assert accepted.status_code == 202
    assert accepted.get_json()["status"] == "queued"
    assert db.jobs.get_any(accepted.get_json()["id"]).status == "queued"
    for thread in waiting:
        thread.join()
    assert slots._held == {}


def test_busy_tenants_cannot_take_a_quiet_tenants_long_polls(app, db) -> None:  # type: ignore[no-untyped-def]
    slots = _low_wait_slots(app)
    assert (slots.per_tenant, slots.total, slots.shared) == (4, 12, 8)  # 4 of 12 kept
    tenants = {}
    for name in ("busy-1", "busy-2", "busy-3", "quiet"):
        headers = {"Authorization": f"Bearer {db.keys.create(name)}"}
        tenant = db.keys.ensure_tenant(name)
        job = db.jobs.submit(NewJob(tenant, "train", {"architecture": "mlp", "dataset": "builtin:iris"})).job
        tenants[name] = (headers, f"/v1/jobs/{job.id}")
    stop = threading.Event()
    busy_statuses: list[int] = []

    def loop(name: str) -> None:  # as the report did: each of 3 tenants keeps 6 waits going
        headers, url = tenants[name]
        client = app.test_client()
        while not stop.is_set():
            status = client.get(f"{url}?wait=1&until=finished", headers=headers).status_code
            busy_statuses.append(status)
            if status == 429:
                time.sleep(0.02)

    loops = [threading.Thread(target=loop, args=(f"busy-{i}",)) for i in (1, 2, 3) for _ in range(6)]
    for thread in loops:
        thread.start()
    try:
        deadline, full = time.monotonic() + 10, False
        while not full and time.monotonic() < deadline:
            # The busy tenants hold all they may: the shared slots, and at most one each of the reserve (a
            # tenant's first wait, taken when it held none).
            held = sum(slots._held.values())
            full = slots.shared <= held
            assert held <= slots.shared + 3
            time.sleep(0.01)
        assert full
        headers, url = tenants["quiet"]
        quiet = [app.test_client().get(f"{url}?wait=0.1", headers=headers).status_code for _ in range(20)]
        assert quiet == [200] * 20
    finally:
        stop.set()
        for thread in loops:
            thread.join()
    assert 200 in busy_statuses
    assert 429 in busy_statuses
    assert slots._held == {}


def test_the_wait_reserve_goes_to_tenants_holding_no_wait() -> None:
    from api.wait_slots import WaitSlots
    from tensorq.core.errors import QuotaExceeded

    slots = WaitSlots(per_tenant=3, total=4, reserve=2)
    held = [slots.hold("a", 1), slots.hold("a", 1)]
    for wait in held:
        wait.__enter__()
    with pytest.raises(QuotaExceeded) as refused:  # 'a' waits already; only the reserve is left
        slots.hold("a", 1).__enter__()
    assert refused.value.details == {"quota": "max_waits", "limit": 2}
    with slots.hold("b", 1), slots.hold("c", 1):  # each quiet tenant takes one of the reserve
        with pytest.raises(QuotaExceeded) as refused:
            slots.hold("d", 1).__enter__()
        assert refused.value.details == {"quota": "max_waits", "limit": 4}
        with slots.hold_if_free("d") as taken:
            assert not taken
    for wait in held:
        wait.__exit__(None, None, None)
    assert slots._held == {}
    assert WaitSlots(per_tenant=2, total=2, reserve=5).shared == 1  # a reserve never takes every slot


def test_train_specs_over_the_model_budget_are_422_unless_the_tenant_may(client, auth, settings) -> None:
    params = {"filters": [1024] * 16, "kernel_size": 11, "dense": 8192}
    body = {"type": "train", "spec": {"architecture": "cnn", "dataset": "builtin:digits", "params": params}}
    refused = client.post("/v1/jobs", json=body, headers=auth)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "model_too_large"
    settings.tenant_quotas = {"acme": {"max_model_params": 10**10}}
    # 2 billion weights, their gradients and Adam's two moments: 31 GiB, over the 8 GiB a job may use.
    refused = client.post("/v1/jobs", json=body, headers=auth)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "memory_budget_exceeded"
    settings.tenant_quotas = {"acme": {"max_model_params": 10**10, "max_job_memory_mb": 10**6}}
    assert client.post("/v1/jobs", json=body, headers=auth).status_code == 202


def test_train_specs_over_the_memory_budget_are_422_unless_the_tenant_may(client, auth, settings) -> None:
    # About 1.3 million weights (far under max_model_params), but a batch of 65,536 rows of 8x8x1024 activations.
    params = {"filters": [1024, 1024], "kernel_size": 1, "dense": 16}
    spec = {"architecture": "cnn", "dataset": "builtin:digits", "params": params, "batch_size": 65_536}
    refused = client.post("/v1/jobs", json={"type": "train", "spec": spec}, headers=auth)
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "memory_budget_exceeded"
    assert error["details"]["limit_mb"] == settings.job_memory_mb
    assert error["details"]["estimated_mb"] > 8192
    ordinary = {**spec, "batch_size": 32}
    assert client.post("/v1/jobs", json={"type": "train", "spec": ordinary}, headers=auth).status_code == 202
    settings.tenant_quotas = {"acme": {"max_job_memory_mb": 1_000_000}}
    assert client.post("/v1/jobs", json={"type": "train", "spec": spec}, headers=auth).status_code == 202


def test_twenty_parallel_submissions_with_one_idempotency_key_make_one_job(app, auth, db, publisher) -> None:
    body = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris"}}
    headers = {**auth, "Idempotency-Key": "same-key"}
    answers: list[tuple[int, str]] = []

    def submit() -> int:
        response = app.test_client().post("/v1/jobs", json=body, headers=headers)
        answers.append((response.status_code, response.get_json().get("id", "")))
        return response.status_code

    assert _in_parallel(20, submit) == [202] * 20
    assert len({job_id for _, job_id in answers}) == 1
    assert publisher.published == [answers[0][1]]
    other = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:wine"}}
    statuses = _in_parallel(10, lambda: app.test_client().post("/v1/jobs", json=other, headers=headers).status_code)
    assert statuses == [422] * 10
    assert db.jobs.count_queued(db.keys.ensure_tenant("acme")) == 1


def test_metrics_show_no_tenant(client, auth, other_auth) -> None:
    body = {"type": "train", "spec": {"architecture": "mlp", "dataset": "builtin:iris"}}
    assert client.post("/v1/jobs", json=body, headers=auth).status_code == 202
    text = client.get("/metrics").get_data(as_text=True)
    assert "tensorq_jobs" in text
    assert "acme" not in text
    assert "globex" not in text
    assert "tenant" not in text


def test_a_chunked_model_upload_counts_the_bytes_written(client, auth, settings) -> None:
    from tests.ml.keras_files import zip_bytes

    settings.quota_model_bytes = 1000
    payload = zip_bytes({"config.json": b"{}" + b" " * 5000, "metadata.json": b"{}"})
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.keras"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/v1/models",
        input_stream=io.BytesIO(body),
        headers={**auth, "Transfer-Encoding": "chunked"},
        content_type=f"multipart/form-data; boundary={boundary}",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413, response.get_json()
    assert response.get_json()["error"]["code"] == "storage_quota_exceeded"
    assert not list((Path(settings.artifact_dir) / "uploads").rglob("*.keras"))
