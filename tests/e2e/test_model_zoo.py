"""The model zoo on the real stack: HTTP API -> Postgres -> Redis -> a real Celery worker process -> TensorFlow.

cnn on digits and rnn on an uploaded text set train through the API to their stated quality; a vae and a
recommender train, predict and (the recommender) refuse ids they never saw; bring-your-own models import,
predict, or are refused (a Lambda's code never runs).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tensorq.client import Dataset, Job, TensorQClient, TensorQHTTPError
from tests.e2e.test_round_trip import stack  # noqa: F401 - the same real-stack fixture, one stack for this module
from tests.ml.keras_files import h5_bytes, lambda_model, plain_model, random_bytes, traversal_zip
from tests.ml.synthetic import NEGATIVE, POSITIVE, low_rank_ratings, sentiment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _upload(client: TensorQClient, route: str, payload: bytes, filename: str) -> Any:
    """Upload bytes from memory; a dataset for ``/v1/datasets``, the import job for ``/v1/models``."""
    answer = client._call("POST", route, files={"file": (filename, io.BytesIO(payload))}).json()  # noqa: SLF001
    return Dataset.from_dict(answer) if route == "/v1/datasets" else Job.from_dict(answer)


def test_cnn_reaches_97_percent_on_held_out_digits(stack: dict) -> None:  # noqa: F811
    client: TensorQClient = stack["client"]
    spec = {
        "architecture": "cnn",
        "dataset": "builtin:digits",
        "epochs": 15,
        "validation_split": 0.1,
        "test_split": 0.2,
        "seed": 4,
        "model_name": "zoo-cnn",
    }
    job = client.run("train", spec, timeout=600)
    assert job.status == "succeeded", job.error
    accuracy = job.result["metrics"]["test_accuracy"]
    print(f"\ncnn/digits through the API: test_accuracy {accuracy:.4f} after {job.result['epochs_run']} epochs")
    assert accuracy >= 0.97
    images = load_digits().images[:2].tolist()
    for method in ("occlusion", "lime"):
        explained = client.run("explain", {"model": job.result["model_id"], "inputs": images, "method": method})
        assert explained.status == "succeeded", explained.error
        assert explained.result["artifacts"] == ["heatmap_0.png", "heatmap_1.png"]


def test_rnn_on_an_uploaded_text_set_learns_and_points_at_the_sentiment_words(stack: dict) -> None:  # noqa: F811
    client: TensorQClient = stack["client"]
    texts, labels = sentiment(800, seed=21)
    lines = "".join(
        json.dumps({"text": t, "label": "positive" if y else "negative"}) + "\n"
        for t, y in zip(texts, labels, strict=True)
    )
    dataset = _upload(client, "/v1/datasets", lines.encode(), "reviews.jsonl")
    assert dataset.format == "jsonl"
    assert dataset.info["rows"] == 800
    spec = {
        "architecture": "rnn",
        "dataset": dataset.id,
        "params": {"units": 16, "embedding_dim": 16, "sequence_length": 16, "max_tokens": 200, "cell": "gru"},
        "epochs": 8,
        "learning_rate": 0.01,
        "test_split": 0.2,
        "seed": 5,
        "model_name": "zoo-rnn",
    }
    job = client.run("train", spec, timeout=600)
    assert job.status == "succeeded", job.error
    print(f"\nrnn/text through the API: test_accuracy {job.result['metrics']['test_accuracy']:.4f}")
    assert job.result["metrics"]["test_accuracy"] >= 0.9
    model = client.model(job.result["model_id"]).versions[-1]
    assert model.signature["class_names"] == ["negative", "positive"]
    assert model.signature["kind"] == "text"

    reviews = ["What a superb film, really.", "The ending was awful!"]
    predicted = client.run("predict", {"model": job.result["model_id"], "inputs": reviews})
    assert predicted.status == "succeeded", predicted.error
    assert predicted.result["classes"] == [1, 0]
    explained = client.run(
        "explain", {"model": job.result["model_id"], "inputs": reviews, "method": "integrated_gradients"}
    )
    assert explained.status == "succeeded", explained.error
    result = explained.result
    tops = [w[int(np.argmax(a))] for w, a in zip(result["tokens"], result["attributions"], strict=True)]
    assert tops == ["superb", "awful"]
    assert all(t in POSITIVE + NEGATIVE for t in tops)
    assert "artifacts" not in result


def test_vae_and_recommender_train_and_answer(stack: dict) -> None:  # noqa: F811
    client: TensorQClient = stack["client"]
    vae = client.run("train", {"architecture": "vae", "dataset": "builtin:digits", "epochs": 3, "seed": 1})
    assert vae.status == "succeeded", vae.error
    assert {"reconstruction_loss", "kl_loss", "val_reconstruction_loss"} <= set(vae.result["history"])
    sampled = client.run("predict", {"model": vae.result["model_id"], "mode": "sample", "n": 3, "seed": 2})
    assert sampled.status == "succeeded", sampled.error
    assert np.array(sampled.result["outputs"]).shape == (3, 8, 8, 1)
    encoded = client.run(
        "predict", {"model": vae.result["model_id"], "mode": "encode", "inputs": [np.zeros((8, 8)).tolist()]}
    )
    assert np.array(encoded.result["mean"]).shape == (1, 8)

    users, items, ratings = low_rank_ratings(60, 40, 2, 1200, seed=3)
    rows = "".join(f"{u},{i},{r:.3f}\n" for u, i, r in zip(users, items, ratings, strict=True))
    dataset = _upload(client, "/v1/datasets", ("user,item,rating\n" + rows).encode(), "ratings.csv")
    spec = {
        "architecture": "recommender",
        "dataset": dataset.id,
        "epochs": 15,
        "learning_rate": 0.02,
        "test_split": 0.15,
        "seed": 2,
    }
    job = client.run("train", spec, timeout=600)
    assert job.status == "succeeded", job.error
    metrics = job.result["metrics"]
    assert metrics["test_rmse"] < metrics["test_baseline_rmse"]
    model_id = job.result["model_id"]
    top = client.run("predict", {"model": model_id, "user": users[0], "k": 3})
    assert top.status == "succeeded"
    assert len(top.result["items"]) == 3
    rated = client.run("predict", {"model": model_id, "inputs": [[users[0], items[0]]]})
    assert len(rated.result["ratings"]) == 1
    unseen = client.run("predict", {"model": model_id, "inputs": [["nobody", items[0]]]})
    assert unseen.status == "failed"
    assert unseen.error.code == "unknown_ids"
    assert "nobody" in unseen.error.message


def test_bring_your_own_model(stack: dict) -> None:  # noqa: F811
    client: TensorQClient = stack["client"]
    home: Path = stack["home"]
    job = _upload(client, "/v1/models", plain_model(home / "mine.keras").read_bytes(), "mine.keras")
    assert job.type == "import"
    imported = client.wait(job.id, timeout=120)
    assert imported.status == "succeeded", imported.error
    model_id = imported.result["model_id"]
    predicted = client.run("predict", {"model": model_id, "inputs": [[0.1, 0.2, 0.3, 0.4]]})
    assert predicted.status == "succeeded"
    assert np.array(predicted.result["outputs"]).shape == (1, 3)

    marker = home / "lambda-ran"
    job = _upload(client, "/v1/models", lambda_model(home / "lambda.keras", marker).read_bytes(), "lambda.keras")
    refused = client.wait(job.id, timeout=120)
    assert refused.status == "failed"
    assert refused.error.code == "invalid_request"
    assert "Lambda" in refused.error.message
    assert not marker.exists()

    for payload, name in ((h5_bytes(), "model.h5"), (traversal_zip(), "evil.keras"), (random_bytes(), "noise.keras")):
        with pytest.raises(TensorQHTTPError) as caught:
            _upload(client, "/v1/models", payload, name)
        assert caught.value.status == 400
