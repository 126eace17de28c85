"""Hostile tables over HTTP, on both databases: a Parquet dictionary bomb, a footer that under-states its rows
or its sizes, a CSV cell over the cap, and train specs naming thousands of columns (answered fast, their errors
short); and the upload check's peak memory on a dictionary bomb, measured in a process of its own."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from tests.ml.hostile_parquet import dictionary_bomb, understated_rows, understated_sizes

ROOT = Path(__file__).resolve().parents[2]


def _upload(client, auth, payload: bytes, name: str = "t.parquet"):  # type: ignore[no-untyped-def]
    data = {"file": (io.BytesIO(payload), name)}
    return client.post("/v1/datasets", data=data, headers=auth, content_type="multipart/form-data")


def test_a_parquet_dictionary_bomb_is_413_and_nothing_is_stored(client, auth, settings) -> None:  # type: ignore[no-untyped-def]
    response = _upload(client, auth, dictionary_bomb(4096, 50_000))
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "cell_too_large"
    assert error["details"] == {"column": "s", "cell_bytes": 4096, "limit": settings.max_cell_bytes}
    assert client.get("/v1/datasets", headers=auth).get_json()["datasets"] == []
    assert not any(settings.artifact_dir.rglob("*.parquet"))


def test_a_bomb_under_the_cell_cap_is_refused_by_what_it_expands_to(client, auth, settings) -> None:  # type: ignore[no-untyped-def]
    settings.max_dataset_array_bytes = 10**7
    response = _upload(client, auth, dictionary_bomb(1000, 50_000))  # ~8 KiB on disk, 50 MB expanded
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "parquet_too_large"


def test_a_footer_that_understates_its_rows_does_not_bypass_the_row_cap(client, auth) -> None:  # type: ignore[no-untyped-def]
    response = _upload(client, auth, understated_rows(3_000_000, 1000))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "at most 1000000 rows" in error["message"]
    assert error["details"] == {"rows": 3_000_000}
    lying = _upload(client, auth, understated_rows(3000, 1000))
    assert lying.status_code == 400
    assert lying.get_json()["error"]["code"] == "invalid_parquet"


def test_a_footer_that_understates_its_sizes_is_refused_from_the_page_headers(client, auth) -> None:  # type: ignore[no-untyped-def]
    payload, _ = understated_sizes(70_000_000, 1000)  # 2 KiB on disk; the footer says 1000 bytes, the page 70 MB
    response = _upload(client, auth, payload)
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "parquet_too_large"
    assert error["details"]["page_bytes"] > 70_000_000


def test_a_csv_cell_over_the_cap_is_413_naming_its_column(client, auth, settings) -> None:  # type: ignore[no-untyped-def]
    settings.max_cell_bytes = 100
    ok = _upload(client, auth, b"a,note\n1," + b"y" * 100 + b"\n", "ok.csv")
    assert ok.status_code == 201, ok.get_json()
    response = _upload(client, auth, b"a,note\n1,short\n2," + "é".encode() * 51 + b"\n", "long.csv")
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "cell_too_large"
    assert error["details"] == {"column": "note", "cell_bytes": 102, "limit": 100}


def _wide_dataset(client, auth, columns: int) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    names = [f"c{i:05d}" for i in range(columns - 1)]
    rows = "".join(",".join([*(str((r + j) % 3) for j in range(columns - 1)), "ab"[r % 2]]) + "\n" for r in range(4))
    response = _upload(client, auth, (",".join([*names, "label"]) + "\n" + rows).encode(), "wide.csv")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"], names


def test_ten_thousand_declared_columns_are_checked_with_sets_and_errors_echo_twenty(client, auth, settings) -> None:  # type: ignore[no-untyped-def]
    settings.max_model_params = 10**12
    settings.max_job_memory_mb = 10**9
    dataset, names = _wide_dataset(client, auth, 10_000)
    spec = {"architecture": "mlp", "dataset": dataset, "label_column": "label", "epochs": 1}
    declared = client.post(
        "/v1/jobs", json={"type": "train", "spec": spec | {"categorical_columns": names}}, headers=auth
    )
    assert declared.status_code == 202, declared.get_json()
    ignored = client.post(
        "/v1/jobs", json={"type": "train", "spec": spec | {"ignore_columns": names[1:]}}, headers=auth
    )
    assert ignored.status_code == 202, ignored.get_json()

    unknown = [f"u{i:05d}" + "z" * 190 for i in range(9_000)]
    response = client.post("/v1/jobs", json={"type": "train", "spec": spec | {"ignore_columns": unknown}}, headers=auth)
    assert response.status_code == 400
    assert len(response.data) < 16_000  # was 6 MB: every unknown name and every column, twice
    error = response.get_json()["error"]
    assert error["code"] == "unknown_columns"
    assert error["details"]["unknown"] == unknown[:20]
    assert error["details"]["unknown_count"] == 9_000
    assert error["details"]["columns"] == names[:20]
    assert error["details"]["column_count"] == 10_000
    assert error["message"].endswith("and 8980 more are not in the dataset")


def test_a_column_list_longer_than_the_table_is_wide_is_refused(client, auth) -> None:  # type: ignore[no-untyped-def]
    dataset = _upload(client, auth, b"a,b,label\n1,2,x\n3,4,y\n", "t.csv").get_json()["id"]
    spec = {"architecture": "mlp", "dataset": dataset, "label_column": "label"}
    for field in ("categorical_columns", "ignore_columns"):
        response = client.post("/v1/jobs", json={"type": "train", "spec": spec | {field: ["a"] * 4}}, headers=auth)
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["code"] == "too_many_columns"
        assert error["details"] == {"given": 4, "columns": 3}


_PEAK = """
import io, json, resource, sys, tempfile
from pathlib import Path
import pyarrow.parquet  # imported before the baseline, as a running API has it
from api import uploads
from tensorq.core.store import ArtifactStore
payload = Path(sys.argv[1]).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stored = uploads.store_upload(
    io.BytesIO(payload), ArtifactStore(Path(tempfile.mkdtemp()).as_uri()), "t", 10**8, 2**30, 2**20
)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": stored.info["rows"], "grown_kib": after - before}))
"""


def test_checking_an_accepted_dictionary_bomb_keeps_the_api_memory_flat(tmp_path: Path) -> None:
    path = tmp_path / "bomb.parquet"
    path.write_bytes(dictionary_bomb(4096, 50_000))  # accepted under a 1 MiB cell cap: 200 MB once expanded
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    assert measured["rows"] == 50_000
    assert measured["grown_kib"] < 64 * 1024, measured  # was about 770 MiB: every cell a Python string, twice
