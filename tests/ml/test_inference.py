"""Inference: safe cached loading, input coercion and checks, batched direct calls."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from api.errors import http_status
from ml import inference
from ml.inference import coerce_inputs, input_signature, load_model, predict, set_cache_size
from tensorq.core.errors import InvalidRequest, OutOfRange
from tests.ml.conftest import Trained


def test_saved_model_loads_safely_and_predicts_like_the_trained_one(trained_mlp: Trained) -> None:
    in_memory = keras.models.load_model(trained_mlp.outcome.model_path, safe_mode=True, compile=True)
    loaded = load_model(trained_mlp.outcome.model_path)
    x = trained_mlp.held_out.x
    probabilities = predict(loaded, x)
    assert probabilities.shape == (len(x), 2)
    assert probabilities.dtype == np.float32
    np.testing.assert_array_equal(probabilities, predict(in_memory, x))
    np.testing.assert_allclose(probabilities, np.asarray(in_memory(x, training=False)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((probabilities.argmax(axis=1) == trained_mlp.held_out.y).mean())
    print(f"\nmlp/breast_cancer reloaded, accuracy on never-seen rows: {accuracy:.4f}")
    assert accuracy >= 0.93


def test_predict_batches_agree_with_one_call(trained_cnn: Trained) -> None:
    x = trained_cnn.held_out.x[:50]
    whole = predict(trained_cnn.model, x)
    np.testing.assert_allclose(predict(trained_cnn.model, x, batch_size=7), whole, rtol=1e-5, atol=1e-6)
    assert predict(trained_cnn.model, x[:0]).shape == (0, 10)
    with pytest.raises(OutOfRange):
        predict(trained_cnn.model, x, batch_size=0)


def test_the_cache_returns_the_same_model_until_the_file_changes(trained_mlp: Trained, tmp_path: Path) -> None:
    path = tmp_path / "copy.keras"
    shutil.copy(trained_mlp.outcome.model_path, path)
    first = load_model(path)
    assert load_model(str(path)) is first
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert load_model(path) is not first


def test_the_cache_is_bounded(trained_mlp: Trained, tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"m{i}.keras")
        shutil.copy(trained_mlp.outcome.model_path, paths[-1])
    set_cache_size(2)
    try:
        inference.clear_cache()
        models = [load_model(p) for p in paths]
        assert len(inference._cache) == 2
        assert load_model(paths[2]) is models[2]
        assert load_model(paths[0]) is not models[0]  # the least recently used went first
    finally:
        set_cache_size(8)
    with pytest.raises(OutOfRange):
        set_cache_size(0)


def test_only_safe_keras_files_load(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=".keras"):
        load_model(tmp_path / "model.h5")
    with pytest.raises(InvalidRequest, match="missing"):
        load_model(tmp_path / "absent.keras")
    inputs = keras.Input((3,))
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    unsafe.save(tmp_path / "lambda.keras")
    with pytest.raises(InvalidRequest, match="safely"):
        load_model(tmp_path / "lambda.keras")


def test_input_signature(trained_mlp: Trained, trained_cnn: Trained) -> None:
    assert input_signature(trained_mlp.model) == {"input_shape": [30], "dtype": "float32"}
    assert input_signature(trained_cnn.model) == {"input_shape": [8, 8, 1], "dtype": "float32"}


def test_coerce_accepts_batches_single_examples_and_missing_channels(
    trained_mlp: Trained, trained_cnn: Trained
) -> None:
    row = trained_mlp.held_out.x[0].tolist()
    assert coerce_inputs(trained_mlp.model, [row, row]).shape == (2, 30)
    single = coerce_inputs(trained_mlp.model, row)
    assert single.shape == (1, 30)
    assert single.dtype == np.float32
    image = trained_cnn.held_out.x[0, :, :, 0]
    assert coerce_inputs(trained_cnn.model, image.tolist()).shape == (1, 8, 8, 1)
    assert coerce_inputs(trained_cnn.model, np.stack([image] * 3)).shape == (3, 8, 8, 1)
    assert coerce_inputs(trained_cnn.model, image[..., None]).shape == (1, 8, 8, 1)
    assert coerce_inputs(trained_cnn.model, [image[..., None]] * 2).shape == (2, 8, 8, 1)


def test_shape_mismatch_names_the_expected_shape(trained_mlp: Trained, trained_cnn: Trained) -> None:
    with pytest.raises(InvalidRequest, match="does not match the model's") as caught:
        coerce_inputs(trained_mlp.model, [[1.0, 2.0, 3.0]])
    assert caught.value.details == {"expected_shape": ["batch", 30], "got_shape": [1, 3]}
    assert http_status(caught.value) == 400
    with pytest.raises(InvalidRequest) as caught:
        coerce_inputs(trained_cnn.model, np.zeros((2, 28, 28)))
    assert caught.value.details["expected_shape"] == ["batch", 8, 8, 1]
    with pytest.raises(InvalidRequest):
        coerce_inputs(trained_mlp.model, 3.0)


@pytest.mark.parametrize(
    "inputs",
    [
        [[float("nan")] * 30],
        [[float("inf")] * 30],
        [[1e39] * 30],  # overflows float32
        [["1.0"] * 30],
        [[1.0] * 30, [1.0] * 29],
        [[None] * 30],
        [],
    ],
)
def test_bad_values_are_rejected(trained_mlp: Trained, inputs: list) -> None:
    with pytest.raises(InvalidRequest):
        coerce_inputs(trained_mlp.model, inputs)
