"""Audio through the API alone (no worker): zips of WAV clips checked at upload, audio train specs checked at
submit against the data and the budget, on both databases."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def _wav(seconds: float, rate: int = 8000, fmt: str = "WAV") -> bytes:
    out = io.BytesIO()
    sf.write(out, np.zeros(round(seconds * rate), np.float32), rate, format=fmt)
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _upload(client, auth, payload: bytes):  # type: ignore[no-untyped-def]
    data = {"file": (io.BytesIO(payload), "clips.zip")}
    return client.post("/v1/datasets", data=data, headers=auth, content_type="multipart/form-data")


def test_a_zip_of_clips_is_an_audio_dataset_described_by_its_headers(client, auth, settings) -> None:
    response = _upload(client, auth, _zip({"yes/a.wav": _wav(0.5), "no/b.wav": _wav(0.25, 16_000)}))
    assert response.status_code == 201, response.get_json()
    dataset = response.get_json()
    assert dataset["format"] == "audio"
    assert dataset["info"] == {
        "clips": 2,
        "rows": 2,
        "labels": ["no", "yes"],
        "seconds": 0.75,
        "sample_rates": [8000, 16_000],
    }
    assert [p.name for p in Path(settings.artifact_dir).rglob("*.audio")] == [f"{dataset['id']}.audio"]


@pytest.mark.parametrize(
    ("members", "status", "code"),
    [
        ({"yes/a.wav": b"RIFF\x10\x00\x00\x00WAVEfmt nonsense"}, 400, "corrupt_audio"),
        ({"yes/a.wav": _wav(0.5, fmt="FLAC")}, 400, "unsupported_audio"),
        ({"yes/a.wav": _wav(0.5), "yes/b.ogg": b"OggS"}, 400, "unsupported_audio"),
        ({"yes/a.wav": _wav(31.0, rate=1000)}, 422, "clip_too_long"),
    ],
)
def test_a_bad_clip_is_refused_at_upload_and_nothing_is_kept(
    client, auth, settings, members: dict[str, bytes], status: int, code: str
) -> None:
    response = _upload(client, auth, _zip(members))
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert client.get("/v1/datasets", headers=auth).get_json()["datasets"] == []
    assert [p for p in Path(settings.artifact_dir).rglob("*") if p.is_file()] == []


def test_audio_train_specs_are_checked_against_the_data_at_submit(client, auth) -> None:
    dataset = _upload(client, auth, _zip({"yes/a.wav": _wav(0.5), "no/b.wav": _wav(0.5)})).get_json()["id"]
    answers = {
        "mlp on clips": {"architecture": "mlp", "dataset": dataset},
        "audio_cnn on a table": {"architecture": "audio_cnn", "dataset": "builtin:iris"},
        "mlp on spoken digits": {"architecture": "mlp", "dataset": "builtin:spoken_digits"},
    }
    for what, spec in answers.items():
        response = client.post("/v1/jobs", json={"type": "train", "spec": spec}, headers=auth)
        assert response.status_code == 400, what
        assert response.get_json()["error"]["code"] == "data_does_not_fit", what
    huge = {"sample_rate": 48_000, "clip_seconds": 30.0, "filters": [512, 512], "dense": 4096}
    spec = {"architecture": "audio_cnn", "dataset": "builtin:spoken_digits", "params": huge}
    response = client.post("/v1/jobs", json={"type": "train", "spec": spec}, headers=auth)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] in ("model_too_large", "memory_budget_exceeded")
    ok = {"architecture": "audio_cnn", "dataset": dataset, "params": {"sample_rate": 8000, "clip_seconds": 0.5}}
    assert client.post("/v1/jobs", json={"type": "train", "spec": ok}, headers=auth).status_code == 202
