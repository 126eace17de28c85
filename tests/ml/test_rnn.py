"""``rnn``: text classified from raw strings (vectorised inside the model), words attributed, and sequences."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from ml import builders
from ml.datasets import Dataset
from ml.explain import explain
from ml.inference import coerce_inputs, input_signature, load_model, predict
from ml.training import TrainConfig, train
from tensorq.core.errors import InvalidRequest, OutOfRange
from tests.ml.conftest import Trained
from tests.ml.synthetic import NEGATIVE, POSITIVE, sentiment

PARAMS = {"units": 16, "embedding_dim": 16, "sequence_length": 16, "max_tokens": 200}


@pytest.fixture(scope="module")
def trained_rnn(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A bidirectional LSTM trained on 800 sentiment texts (8 epochs), and 200 texts it never saw."""
    texts, labels = sentiment(1000, seed=11)
    data = Dataset(np.asarray(texts[:800], dtype=object), labels[:800], "text")
    held_out = Dataset(np.asarray(texts[800:], dtype=object), labels[800:], "text")
    config = TrainConfig("rnn", {**PARAMS, "bidirectional": True}, epochs=8, learning_rate=0.01, seed=4, test_split=0.2)
    outcome = train(config, data, tmp_path_factory.mktemp("rnn"))
    return Trained(load_model(outcome.model_path), outcome, held_out)


def test_rnn_learns_sentiment_from_raw_text(trained_rnn: Trained) -> None:
    metrics = trained_rnn.outcome.metrics
    probabilities = predict(trained_rnn.model, coerce_inputs(trained_rnn.model, list(trained_rnn.held_out.x)))
    accuracy = float((probabilities.argmax(axis=1) == trained_rnn.held_out.y).mean())
    print(f"\nrnn/sentiment: test_accuracy {metrics['test_accuracy']:.4f}, never-seen texts {accuracy:.4f}")
    assert metrics["test_accuracy"] >= 0.9
    assert accuracy >= 0.9
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(trained_rnn.outcome.history)
    signature = trained_rnn.outcome.signature
    assert signature["kind"] == "text"
    assert signature["input_shape"] is None
    assert signature["input_dtype"] == "string"
    assert input_signature(trained_rnn.model) == {"input_shape": [], "dtype": "string"}
    assert [type(layer).__name__ for layer in trained_rnn.model.layers][:3] == [
        "InputLayer",
        "TextVectorization",
        "Embedding",
    ]


def test_top_attributed_words_are_the_sentiment_words(trained_rnn: Trained) -> None:
    texts = list(trained_rnn.held_out.x[:40])
    result = explain(trained_rnn.model, coerce_inputs(trained_rnn.model, texts), "integrated_gradients", steps=64)
    assert len(result.extras["tokens"]) == 40
    hits = 0
    for words, attributions in zip(result.extras["tokens"], result.attributions, strict=True):
        assert len(words) == len(attributions)
        hits += words[int(np.argmax(attributions))] in POSITIVE + NEGATIVE
    print(f"\nrnn IG: the top word is the sentiment word in {hits}/40 texts; gap {result.quality}")
    assert hits >= 36
    assert result.quality["completeness_gap"] < 0.05


@pytest.mark.parametrize("method", ["smoothgrad", "occlusion", "kernel_shap", "lime"])
def test_every_text_method_finds_the_sentiment_word(trained_rnn: Trained, method: str) -> None:
    texts = ["The movie was really excellent and the cast too.", "It is a dreadful film of the night"]
    result = explain(trained_rnn.model, coerce_inputs(trained_rnn.model, texts), method, nsamples=300)
    tops = [words[int(np.argmax(a))] for words, a in zip(result.extras["tokens"], result.attributions, strict=True)]
    assert tops == ["excellent", "dreadful"], (method, result.attributions)
    assert result.extras["tokens"][0][:3] == ["the", "movie", "was"]  # lower-cased, punctuation stripped
    assert len(result.per_input_quality) == 2


def test_text_refuses_gradient_shap_and_other_baselines(trained_rnn: Trained) -> None:
    x = coerce_inputs(trained_rnn.model, ["a superb show"])
    with pytest.raises(InvalidRequest, match="numeric inputs"):
        explain(trained_rnn.model, x, "gradient_shap")
    with pytest.raises(OutOfRange):
        explain(trained_rnn.model, x, "integrated_gradients", baseline="mean")


def test_text_inputs_are_checked(trained_rnn: Trained) -> None:
    assert coerce_inputs(trained_rnn.model, "one text").tolist() == ["one text"]
    for bad in ([1, 2], [], [["nested"]], 3.0):
        with pytest.raises(InvalidRequest):
            coerce_inputs(trained_rnn.model, bad)


def test_numeric_sequences_train_with_a_gru(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 12, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(np.int64)  # the class is the sign of feature 0's running total
    config = TrainConfig("rnn", {"cell": "gru", "units": 16}, epochs=12, learning_rate=0.01, seed=1)
    outcome = train(config, Dataset(x, y, "tabular"), tmp_path / "seq")
    model = load_model(outcome.model_path)
    print(f"\nrnn/gru sequences: val_accuracy {outcome.metrics['val_accuracy']:.3f}")
    assert outcome.metrics["val_accuracy"] >= 0.8
    assert model.input_shape == (None, 12, 3)
    assert outcome.signature["input_shape"] == [12, 3]
    # A 3-D .npz loads as (N, T, F, 1); the rnn takes that too.
    three = builders.get("rnn")((12, 3, 1), 2, {"units": 4})
    assert three.output_shape == (None, 2)


def test_same_seed_same_history(tmp_path: Path) -> None:
    texts, labels = sentiment(160, seed=2)
    data = Dataset(np.asarray(texts, dtype=object), labels, "text")
    config = TrainConfig("rnn", {**PARAMS, "cell": "gru"}, epochs=2, seed=9)
    first = train(config, data, tmp_path / "a").history
    second = train(config, data, tmp_path / "b").history
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cell": "transformer"}, "params.cell"),
        ({"units": 0}, "params.units"),
        ({"bidirectional": "yes"}, "params.bidirectional"),
        ({"sequence_length": 5000}, "params.sequence_length"),
    ],
)
def test_rnn_params_are_range_checked(params: dict, field: str) -> None:
    with pytest.raises(OutOfRange) as caught:
        builders.get("rnn")((), 2, params)
    assert caught.value.details["field"] == field


def test_rnn_refuses_images_and_uses_no_lambda() -> None:
    with pytest.raises(InvalidRequest, match="text or sequences"):
        builders.get("rnn")((8, 8, 3), 2, {})
    model = builders.get("rnn")((), 3, {"layers": 2, "bidirectional": True, "dense": 8})
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    assert model.output_shape == (None, 3)
