"""Resumable dataset uploads on each artifact store and database: parts through the API (resumed after a missing
part), presigned multipart straight to S3 (rclone serve s3), limits, quota at completion, abort, the reaper's
clean-up of expired sessions, and a store that cannot be reached."""

from __future__ import annotations

import hashlib
import io
import json
import time
import urllib.request
import zipfile
from pathlib import Path

import httpx
import pytest

from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore
from tests.conftest import make_settings, unreachable_store_settings
from tests.services import S3_KEY, S3_SECRET

PART = 1024
ROWS = "".join(f"{i},{i * 2},{'cat' if i % 2 else 'dog'}\n" for i in range(400))
CSV = ("a,b,label\n" + ROWS).encode()  # about 4.9 KiB: 5 parts of 1 KiB


@pytest.fixture
def settings(tmp_path: Path, database_url: str, store_fields: dict[str, object]) -> Settings:
    """Settings on each database and each store, with 1 KiB parts. ``/readyz`` waits up to 30 s for the store:
    these tests ask whether it checks the store, not how fast (a fresh S3 client's first call, its session and
    TLS set-up, took over the 2 s default on the loaded CI machine)."""
    return make_settings(tmp_path, database_url, upload_chunk_bytes=PART, readyz_store_timeout_s=30, **store_fields)


def _start(client, auth, size: int, **extra: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/datasets/uploads", json={"size_bytes": size, **extra}, headers=auth)


def _put(client, auth, upload_id: str, index: int, data: bytes, **headers: str):  # type: ignore[no-untyped-def]
    return client.put(
        f"/v1/datasets/uploads/{upload_id}/parts/{index}",
        data=data,
        headers={**auth, **headers},
        content_type="application/octet-stream",
    )


def _part(payload: bytes, index: int) -> bytes:
    return payload[index * PART : (index + 1) * PART]


def _leftovers(store: ArtifactStore) -> dict[str, int]:
    """Parts still in the store: the file store's upload area, or S3 multipart uploads under the root."""
    if store.local:
        return store.listing(store.location("uploads"))
    bucket, _, prefix = store.root.partition("/")
    pending = store.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return {item["Key"]: 0 for item in pending}


def test_parts_resumed_after_a_missing_one_make_a_registered_dataset(client, auth, settings, db) -> None:  # type: ignore[no-untyped-def]
    store = ArtifactStore.from_settings(settings)
    sha = hashlib.sha256(CSV).hexdigest()
    started = _start(client, auth, len(CSV), name="events", sha256=sha)
    assert started.status_code == 201, started.get_json()
    upload = started.get_json()
    assert (upload["parts"], upload["part_bytes"], upload["received"]) == (5, PART, [])
    assert upload["presigned"] is (not store.local)
    assert started.headers["Location"] == f"/v1/datasets/uploads/{upload['id']}"
    for index in (0, 1, 3, 4):  # part 2 lost on the way
        answer = _put(client, auth, upload["id"], index, _part(CSV, index))
        assert answer.status_code == 200, answer.get_json()
    _put(client, auth, upload["id"], 4, _part(CSV, 4))  # re-sent: fine
    early = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=auth)
    assert early.status_code == 409
    assert early.get_json()["error"]["code"] == "upload_incomplete"
    assert early.get_json()["error"]["details"]["missing_parts"] == [2]

    state = client.get(f"/v1/datasets/uploads/{upload['id']}", headers=auth).get_json()
    assert (state["received"], state["missing"], state["status"]) == ([0, 1, 3, 4], 1, "open")
    start = 2 * PART
    content_range = f"bytes {start}-{start + PART - 1}/{len(CSV)}"
    ranged = _put(client, auth, upload["id"], 2, _part(CSV, 2), **{"Content-Range": content_range})
    assert ranged.get_json() == {"index": 2, "size_bytes": PART}

    done = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=auth)
    assert done.status_code == 201, done.get_json()
    dataset = done.get_json()
    assert (dataset["id"], dataset["name"], dataset["format"]) == (upload["id"], "events", "csv")
    assert dataset["info"] == {"rows": 400, "columns": ["a", "b", "label"]}
    assert [column["name"] for column in dataset["schema"]] == ["a", "b", "label"]
    [record] = db.datasets.list(db.keys.ensure_tenant("acme"))
    assert record.size_bytes == len(CSV)
    with store.open(record.path) as handle:
        assert handle.read() == CSV
    assert record.path not in json.dumps(dataset)
    assert _leftovers(store) == {}
    assert not [p for p in Path(settings.scratch_dir).rglob("*") if p.is_file()]
    again = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=auth)  # a retried completion
    assert (again.status_code, again.get_json()["id"]) == (201, dataset["id"])
    assert client.get(f"/v1/datasets/uploads/{upload['id']}", headers=auth).get_json()["dataset_id"] == dataset["id"]


def test_another_tenant_sees_no_upload(client, auth, other_auth) -> None:  # type: ignore[no-untyped-def]
    upload = _start(client, auth, len(CSV)).get_json()
    path = f"/v1/datasets/uploads/{upload['id']}"
    assert client.get(path, headers=other_auth).status_code == 404
    assert _put(client, other_auth, upload["id"], 0, _part(CSV, 0)).status_code == 404
    assert client.post(f"{path}/complete", headers=other_auth).status_code == 404
    assert client.delete(path, headers=other_auth).status_code == 404
    assert client.get(path, headers=auth).status_code == 200


def test_limits_on_the_upload_and_each_part(client, auth, settings) -> None:  # type: ignore[no-untyped-def]
    settings.max_chunked_upload_bytes = 10 * PART
    too_big = _start(client, auth, 10 * PART + 1)
    assert (too_big.status_code, too_big.get_json()["error"]["code"]) == (413, "upload_too_large")
    upload = _start(client, auth, len(CSV)).get_json()
    over = _put(client, auth, upload["id"], 0, b"x" * (PART + 1))
    assert over.status_code == 413
    short = _put(client, auth, upload["id"], 0, b"x" * 10)
    assert (short.status_code, short.get_json()["error"]["code"]) == (400, "part_size_mismatch")
    last = _put(client, auth, upload["id"], 4, b"x" * PART)  # the last part is the rest, not a whole part
    assert last.get_json()["error"]["code"] in ("part_too_large", "payload_too_large")
    outside = _put(client, auth, upload["id"], 5, b"x")
    assert (outside.status_code, outside.get_json()["error"]["code"]) == (422, "part_out_of_range")
    wrong_range = _put(client, auth, upload["id"], 1, _part(CSV, 1), **{"Content-Range": "bytes 0-1023/9"})
    assert wrong_range.get_json()["error"]["code"] == "content_range_mismatch"
    state = client.get(f"/v1/datasets/uploads/{upload['id']}", headers=auth).get_json()
    assert state["received"] == []  # nothing refused was kept


def test_the_quota_is_counted_at_completion_and_a_refused_upload_is_removed(client, auth, settings, db) -> None:  # type: ignore[no-untyped-def]
    store = ArtifactStore.from_settings(settings)
    settings.quota_dataset_bytes = len(CSV) + 100
    upload = _start(client, auth, len(CSV)).get_json()
    for index in range(upload["parts"]):
        _put(client, auth, upload["id"], index, _part(CSV, index))
    small = client.post(
        "/v1/datasets",
        data={"file": (io.BytesIO(CSV[:200].rsplit(b"\n", 1)[0] + b"\n"), "t.csv")},
        headers=auth,
        content_type="multipart/form-data",
    )
    assert small.status_code == 201  # fills the quota while the upload is open
    refused = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=auth)
    assert refused.status_code == 413
    assert refused.get_json()["error"]["code"] == "storage_quota_exceeded"
    assert client.get(f"/v1/datasets/uploads/{upload['id']}", headers=auth).status_code == 404
    assert _leftovers(store) == {}
    [kept] = db.datasets.list(db.keys.ensure_tenant("acme"))
    assert store.listing(store.location("datasets")) == {kept.path: kept.size_bytes}


def test_an_aborted_upload_leaves_nothing(client, auth, settings) -> None:  # type: ignore[no-untyped-def]
    store = ArtifactStore.from_settings(settings)
    upload = _start(client, auth, len(CSV)).get_json()
    _put(client, auth, upload["id"], 0, _part(CSV, 0))
    assert _leftovers(store) != {}
    aborted = client.delete(f"/v1/datasets/uploads/{upload['id']}", headers=auth)
    assert aborted.get_json() == {"aborted": "upload", "id": upload["id"]}
    assert client.get(f"/v1/datasets/uploads/{upload['id']}", headers=auth).status_code == 404
    assert _leftovers(store) == {}


def test_the_reaper_removes_an_expired_upload_and_its_parts(client, auth, settings, db, publisher) -> None:  # type: ignore[no-untyped-def]
    from worker.reaper import Reaper

    store = ArtifactStore.from_settings(settings)
    settings.upload_expiry_s = 0.2
    upload = _start(client, auth, len(CSV)).get_json()
    _put(client, auth, upload["id"], 0, _part(CSV, 0))
    kept = _start(client, auth, len(CSV)).get_json()
    reaper = Reaper(settings, db, publisher)
    time.sleep(0.3)
    settings.upload_expiry_s = 3600
    fresh = _start(client, auth, len(CSV)).get_json()  # not expired: kept
    reaper.run_once()
    assert client.get(f"/v1/datasets/uploads/{upload['id']}", headers=auth).status_code == 404
    assert client.get(f"/v1/datasets/uploads/{kept['id']}", headers=auth).status_code == 404
    assert client.get(f"/v1/datasets/uploads/{fresh['id']}", headers=auth).status_code == 200
    leftovers = _leftovers(store)
    assert not any(upload["id"] in name or kept["id"] in name for name in leftovers)


def test_a_large_table_is_described_from_a_sample_and_other_formats_are_refused(client, auth, settings) -> None:  # type: ignore[no-untyped-def]
    settings.max_upload_bytes = 2 * PART  # smaller than the upload: profiled like a dataset by reference
    store = ArtifactStore.from_settings(settings)
    upload = _start(client, auth, len(CSV)).get_json()
    for index in range(upload["parts"]):
        _put(client, auth, upload["id"], index, _part(CSV, index))
    done = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=auth).get_json()
    assert (done["format"], done["info"]["sample_rows"], done["info"]["bytes"]) == ("csv", 400, len(CSV))
    assert done["info"]["rows"] is None  # a CSV's rows are not counted without reading it whole

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    table = pa.table({"a": list(range(3000)), "b": [i * 0.5 for i in range(3000)], "label": ["cat", "dog"] * 1500})
    pq.write_table(table, sink, row_group_size=1000)
    parquet = sink.getvalue()
    assert len(parquet) > settings.max_upload_bytes
    upload = _start(client, auth, len(parquet)).get_json()
    for index in range(upload["parts"]):
        _put(client, auth, upload["id"], index, _part(parquet, index))
    done = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=auth).get_json()
    assert (done["format"], done["info"]["rows"], done["info"]["sample_rows"]) == ("parquet", 3000, 2000)
    assert "url" not in done["info"]

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", b"\x00" * 3000)
    payload = buffer.getvalue()
    upload = _start(client, auth, len(payload)).get_json()
    for index in range(upload["parts"]):
        _put(client, auth, upload["id"], index, _part(payload, index))
    refused = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=auth)
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (413, "upload_too_large_for_format")
    assert _leftovers(store) == {}
    assert len(store.listing(store.location("datasets"))) == 2


def test_presigned_parts_go_straight_to_s3(client, auth, settings) -> None:  # type: ignore[no-untyped-def]
    store = ArtifactStore.from_settings(settings)
    upload = _start(client, auth, len(CSV), sha256=hashlib.sha256(CSV).hexdigest()).get_json()
    asked = client.post(f"/v1/datasets/uploads/{upload['id']}/urls", json={"parts": [0, 1, 2, 3, 4]}, headers=auth)
    if store.local:
        assert (asked.status_code, asked.get_json()["error"]["code"]) == (409, "presign_unsupported")
        return
    assert asked.status_code == 200, asked.get_json()
    urls = asked.get_json()["urls"]
    assert [u["index"] for u in urls] == [0, 1, 2, 3, 4]
    assert S3_SECRET not in json.dumps(asked.get_json())
    for item in urls[:4]:
        request = urllib.request.Request(item["url"], data=_part(CSV, item["index"]), method="PUT")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
    _put(client, auth, upload["id"], 4, _part(CSV, 4))  # the two ways mix: both are parts of one multipart upload
    state = client.get(f"/v1/datasets/uploads/{upload['id']}", headers=auth).get_json()
    assert state["received"] == [0, 1, 2, 3, 4]
    done = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=auth)
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["info"]["rows"] == 400

    wrong = _start(client, auth, len(CSV), sha256="0" * 64).get_json()
    for index in range(wrong["parts"]):
        _put(client, auth, wrong["id"], index, _part(CSV, index))
    refused = client.post(f"/v1/datasets/uploads/{wrong['id']}/complete", headers=auth)
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (400, "checksum_mismatch")
    assert _leftovers(store) == {}
    assert len(store.listing(store.location("datasets"))) == 1


@pytest.fixture
def unreachable(tmp_path: Path, database_url: str) -> Settings:
    """Settings whose S3 store nobody answers for."""
    return unreachable_store_settings(tmp_path, database_url, store_timeout_s=0.5, readyz_store_timeout_s=5.0)


def test_an_unreachable_store_is_503_and_readyz_names_it(unreachable: Settings, db, publisher) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app

    app = create_app(unreachable, database=db, publisher=publisher)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {db.keys.create('acme')}"}
    response = _start(client, auth, len(CSV))
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["error"]["code"] == "storage_unavailable"
    body = response.get_data(as_text=True)
    for secret in (S3_KEY, S3_SECRET, str(unreachable.s3_endpoint_url), "datasets/", "tensorq/"):
        assert secret not in body
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["Retry-After"]
    checks = ready.get_json()["checks"]
    assert (checks["database"], checks["broker"]) == ("ok", "ok")
    assert checks["storage"].startswith("unavailable")
    assert S3_KEY not in ready.get_data(as_text=True)


def test_readyz_checks_the_store(client) -> None:  # type: ignore[no-untyped-def]
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["storage"] == "ok"


class _Cut(httpx.BaseTransport):
    """The client's connection to the API, dropped on every part PUT after the first ``parts`` (the network is
    the boundary faked here); counts the parts that went through."""

    def __init__(self, inner: httpx.BaseTransport, parts: int | None) -> None:
        self.inner = inner
        self.parts = parts
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/parts/" in request.url.path:
            if self.parts is not None and len(self.sent) >= self.parts:
                raise httpx.ConnectError("connection dropped", request=request)
            self.sent.append(request.url.path.rsplit("/", 1)[-1])
        return self.inner.handle_request(request)


def test_the_client_resumes_an_upload_cut_off(app, key, tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    from tensorq.client import TensorQClient
    from tensorq.client_errors import TransportError

    path = tmp_path / "events.csv"
    path.write_bytes(CSV)
    cut = _Cut(httpx.WSGITransport(app=app), parts=2)
    told: list[str] = []
    with TensorQClient("http://localhost", key, transport=cut) as tq, pytest.raises(TransportError):
        tq.upload_dataset(path, chunked=True, direct=False, on_session=told.append)
    assert cut.sent == ["0", "1"]
    whole = _Cut(httpx.WSGITransport(app=app), parts=None)
    with TensorQClient("http://localhost", key, transport=whole) as tq:
        dataset = tq.upload_dataset(path, resume=told[0], direct=False)
    assert whole.sent == ["2", "3", "4"]  # only what the server lacked
    assert (dataset.id, dataset.name, dataset.info["rows"]) == (told[0], "events.csv", 400)


def test_the_client_sends_parts_straight_to_s3_when_presigned(app, key, tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    from tensorq.client import TensorQClient

    path = tmp_path / "events.csv"
    path.write_bytes(CSV)
    through = _Cut(httpx.WSGITransport(app=app), parts=None)
    with TensorQClient("http://localhost", key, transport=through) as tq:
        dataset = tq.upload_dataset(path, chunked=True)
    assert dataset.info["rows"] == 400
    store = ArtifactStore.from_settings(settings)
    assert through.sent == ([] if not store.local else ["0", "1", "2", "3", "4"])  # S3: none through the API
