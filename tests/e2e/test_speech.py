"""Speech on real parts, on both databases: HTTP API -> SQL -> Redis -> a real worker process -> TensorFlow.

An audio_cnn trains on builtin:spoken_digits (made by espeak-ng into the worker's data cache) as a plain train
job; it predicts WAV files sent in base64, samples with their rate and an uploaded zip of clips, with the words
as labels; it explains a clip over time x frequency with the clip, its spectrogram and the heatmap as artifacts.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import create_engine, text

from db.database import Database
from db.migrate import upgrade
from ml import spoken_digits
from tensorq.client import TensorQClient, TensorQHTTPError
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import make_settings
from tests.e2e.test_cli_jobs import tensorq
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RATE = 8000
PARAMS = {"sample_rate": RATE, "clip_seconds": 0.6, "filters": [16, 32], "dense": 32, "n_mels": 32}
PICKED = [3, 17, 29, 42]  # clips of spoken_digits: (voice, speed, pitch, word) in that order, ten words a cycle


def wav(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, spoken_digits_cache: Path
) -> Iterator[dict]:
    """A database, a Redis of its own, the API in a thread, one real worker, and an audio_cnn trained through them."""
    home = tmp_path_factory.mktemp(f"speech-{request.param}")
    admin, name = None, f"tensorq_speech_{uuid.uuid4().hex[:8]}"
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = server.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{home / 'tq.sqlite3'}"
    redis_server = RedisServer(home / "redis").start()
    settings = make_settings(home, url, broker_url=redis_server.url, data_cache_dir=spoken_digits_cache)
    upgrade(url)
    db = Database(settings)
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, home / "worker.log").start()
    wait_http(f"{api.url}/readyz")
    key = db.keys.create("acme")
    client = TensorQClient(api.url, key)
    try:
        spec = {"architecture": "audio_cnn", "params": PARAMS, "dataset": "builtin:spoken_digits", "epochs": 6}
        spec |= {"test_split": 0.2, "validation_split": 0.1, "seed": 0, "learning_rate": 0.002, "register_as": "digits"}
        trained = client.run("train", spec, timeout=600)
        assert trained.status == "succeeded", trained.error
        env = {"TENSORQ_URL": api.url, "TENSORQ_KEY": key}
        yield {"client": client, "trained": trained, "home": home, "env": env}
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


@pytest.fixture(scope="module")
def clips(spoken_digits_cache: Path) -> tuple[np.ndarray, list[str]]:
    """A few spoken_digits clips at their own rate (16 kHz) and their words."""
    x, y, _ = spoken_digits.clips(spoken_digits_cache)
    return x[PICKED, : spoken_digits.RATE // 2], [spoken_digits.WORDS[int(i)] for i in y[PICKED]]


def test_audio_cnn_trains_on_spoken_digits_as_a_plain_train_job(stack: dict) -> None:
    result = stack["trained"].result
    assert result["metrics"]["test_accuracy"] >= 0.9
    assert len(result["history"]["loss"]) == 6


def test_predict_takes_wav_files_and_samples_with_their_rate_and_names_the_words(stack: dict, clips) -> None:
    client: TensorQClient = stack["client"]
    x, words = clips
    inputs = [{"wav": base64.b64encode(wav(x[0], spoken_digits.RATE)).decode()}]
    inputs += [{"samples": row.round(5).tolist(), "rate": spoken_digits.RATE} for row in x[1:]]
    job = client.run("predict", {"model": "digits", "inputs": inputs}, timeout=300)
    assert job.status == "succeeded", job.error
    assert job.result["labels"] == words
    assert np.allclose(np.sum(job.result["outputs"], axis=1), 1.0, atol=1e-4)


def test_predict_on_an_uploaded_zip_of_clips_or_the_builtin_scores_the_labels(stack: dict, clips) -> None:
    client: TensorQClient = stack["client"]
    x, words = clips
    path = stack["home"] / "clips.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i, (row, word) in enumerate(zip(x, words, strict=True)):
            archive.writestr(f"{word}/{i}.wav", wav(row, spoken_digits.RATE))
    dataset = client.upload_dataset(path)
    assert dataset.format == "audio"
    assert dataset.info["clips"] == len(words)
    job = client.run("predict", {"model": "digits", "dataset": dataset.id}, timeout=300)
    assert job.status == "succeeded", job.error
    assert job.result["metrics"]["accuracy"] == 1.0
    assert sorted(job.result["labels"]) == sorted(words)
    every = client.run("predict", {"model": "digits", "dataset": "builtin:spoken_digits"}, timeout=300)
    assert every.status == "succeeded", every.error
    assert every.result["rows"] == 1200
    assert every.result["metrics"]["accuracy"] >= 0.9


def test_bad_clips_are_refused_with_their_codes(stack: dict) -> None:
    client: TensorQClient = stack["client"]
    path = stack["home"] / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("seven/x.wav", b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    with pytest.raises(TensorQHTTPError) as caught:
        client.upload_dataset(path)
    assert (caught.value.status, caught.value.code) == (400, "corrupt_audio")
    long_clip = {"samples": [0.0] * RATE, "rate": RATE}  # 1 s for a 0.6 s window
    with pytest.raises(TensorQHTTPError) as caught:
        client.submit("predict", {"model": "digits", "inputs": [long_clip]})
    assert (caught.value.status, caught.value.code) == (422, "clip_too_long")
    with pytest.raises(TensorQHTTPError) as caught:
        client.submit("explain", {"model": "digits", "inputs": [[0.0] * 100], "baseline": "mean"})
    assert (caught.value.status, caught.value.details) == (400, {"field": "baseline"})


def test_explain_draws_attributions_over_the_spectrogram_beside_the_clip(stack: dict, clips) -> None:
    client: TensorQClient = stack["client"]
    x, words = clips
    spec = {"model": "digits", "inputs": [{"wav": base64.b64encode(wav(x[0], spoken_digits.RATE)).decode()}]}
    job = client.run("explain", spec, timeout=300)
    assert job.status == "succeeded", job.error
    result = job.result
    assert result["artifacts"] == ["clip_0.wav", "spectrogram_0.png", "heatmap_0.png"]
    assert result["attribution_axes"] == ["time", "frequency"]
    assert np.asarray(result["attributions"]).shape == (1, 58, 32)  # frames x mels
    assert result["quality"]["completeness_gap"] < 0.05
    heard, rate = sf.read(io.BytesIO(client.artifact(job.id, "clip_0.wav")))
    assert rate == RATE
    assert len(heard) == round(RATE * 0.6)
    assert client.artifact(job.id, "heatmap_0.png")[:4] == b"\x89PNG"


def test_the_cli_sends_wav_files_to_predict(stack: dict, clips) -> None:
    x, words = clips
    paths = []
    for i, row in enumerate(x[:2]):
        paths += ["--wav", str(stack["home"] / f"cli-{i}.wav")]
        (stack["home"] / f"cli-{i}.wav").write_bytes(wav(row, spoken_digits.RATE))
    ran = tensorq(["jobs", "submit", "predict", "-p", "model=digits", *paths, "--wait"], stack["env"])
    assert ran.returncode == 0, ran.stdout + ran.stderr
    job = json.loads(tensorq(["jobs", "get", ran.stdout.splitlines()[0]], stack["env"]).stdout)
    assert job["result"]["labels"] == words[:2]
