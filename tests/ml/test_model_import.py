"""Bring-your-own models: checked before anything in them runs, loaded with safe_mode, described."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.inference import load_model, predict
from ml.model_archive import check_archive, check_config, check_zip, staging_path
from ml.model_import import describe, load
from tensorq.core.errors import InvalidRequest
from tests.ml.conftest import Trained
from tests.ml.keras_files import h5_bytes, lambda_model, plain_model, random_bytes, traversal_zip, zip_bytes


def test_a_plain_model_loads_is_described_and_predicts(tmp_path: Path) -> None:
    path = plain_model(tmp_path / "plain.keras")
    model, signature = load(path)
    assert signature == {
        "task": "classify",
        "input_shape": [4],
        "input_dtype": "float32",
        "output_shape": [3],
        "num_classes": 3,
        "kind": "tabular",
        "feature_names": None,
        "class_names": None,
    }
    assert predict(load_model(path), np.ones((2, 4))).shape == (2, 3)


def test_a_lambda_model_is_refused_and_its_code_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = lambda_model(tmp_path / "lambda.keras", marker)
    assert not marker.exists()
    with pytest.raises(InvalidRequest, match="Lambda layers, which run code stored in the file") as caught:
        load(path)
    assert caught.value.code == "invalid_request"
    assert caught.value.details["refused"][0]["class_name"] == "Lambda"
    with pytest.raises(InvalidRequest, match="safely"):
        load_model(path)  # the inference path refuses it too (Keras's safe_mode)
    assert not marker.exists()


def test_custom_objects_are_refused_but_tensorqs_own_classes_load(tmp_path: Path, trained_mlp: Trained) -> None:
    @keras.saving.register_keras_serializable(package="someone")
    class Doubler(keras.layers.Layer):
        def call(self, t):  # noqa: ANN001, ANN201
            return t * 2

    inputs = keras.Input((3,))
    keras.Model(inputs, Doubler()(inputs)).save(tmp_path / "custom.keras")
    with pytest.raises(InvalidRequest, match="custom objects") as caught:
        load(tmp_path / "custom.keras")
    assert caught.value.details["refused"][0]["class_name"] == "Doubler"

    from ml.architectures.vae import VariationalAutoencoder

    vae = VariationalAutoencoder((5,), latent_dim=2, hidden=[4])
    vae.save(tmp_path / "vae.keras")
    model, signature = load(tmp_path / "vae.keras")
    assert isinstance(model, VariationalAutoencoder)
    assert signature["output_shape"] == [5]
    assert load(trained_mlp.outcome.model_path)[1]["num_classes"] == 2


@pytest.mark.parametrize(
    "config",
    [
        {"class_name": "TFSMLayer", "module": "keras.layers", "config": {"filepath": "/srv/model"}},
        {"class_name": "function", "module": "mypackage.tricks", "config": "run", "registered_name": "function"},
        {"layers": [{"class_name": "Dense", "module": "keras_nlp.layers", "registered_name": None}]},
        {"class_name": "__lambda__", "config": {"code": "AAAA"}},
    ],
)
def test_configs_with_code_or_foreign_classes_are_refused(config: dict) -> None:
    with pytest.raises(InvalidRequest):
        check_config(config)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (traversal_zip(), "'..' entry names"),
        (h5_bytes(), "not a .keras model file"),
        (random_bytes(), "not a .keras model file"),
        (zip_bytes({"config.json": b"{}"}), "metadata.json"),
        (zip_bytes({"/etc/config.json": b"{}", "config.json": b"{}", "metadata.json": b"{}"}), "absolute"),
    ],
)
def test_archives_that_are_not_keras_files_are_refused(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "upload.keras"
    path.write_bytes(payload)
    with pytest.raises(InvalidRequest, match=message):
        check_zip(path)
    with pytest.raises(InvalidRequest):
        load(path)


def test_config_json_must_be_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.keras"
    path.write_bytes(zip_bytes({"config.json": b"{not json", "metadata.json": b"{}"}))
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        check_archive(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
        archive.writestr("metadata.json", "{}")
    with pytest.raises(InvalidRequest, match="loaded safely"):
        load(path)


def test_models_with_two_inputs_are_refused() -> None:
    a, b = keras.Input((2,)), keras.Input((3,))
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Concatenate()([a, b])))
    with pytest.raises(InvalidRequest, match="one input and one output"):
        describe(model)


def test_staging_paths_stay_in_the_upload_folder(tmp_path: Path) -> None:
    path = staging_path(tmp_path, "tenant-1", "0b7f3f5e-8b0e-4c43-9d1c-2f1f0a6f4c11")
    assert path.parent == tmp_path / "uploads" / "models" / "tenant-1"
    assert path.suffix == ".keras"
    for upload in ("../../etc/passwd", "x"):
        with pytest.raises(InvalidRequest):
            staging_path(tmp_path, "tenant-1", upload)
    with pytest.raises(InvalidRequest):
        staging_path(tmp_path, "../other", "0b7f3f5e-8b0e-4c43-9d1c-2f1f0a6f4c11")


def test_an_imported_text_model_predicts_and_is_explained_per_word(tmp_path: Path) -> None:
    from ml.explain import explain
    from ml.inference import coerce_inputs

    inputs = keras.Input((1,), dtype="string")
    vectorize = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=6)
    vectorize.adapt(np.array(["a good film", "a bad film", "nice"]))
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(vectorize(inputs)))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled)).save(tmp_path / "text.keras")
    _, signature = load(tmp_path / "text.keras")
    assert signature["kind"] == "text"
    assert signature["input_shape"] is None
    model = load_model(tmp_path / "text.keras")
    x = coerce_inputs(model, ["A good film!", "bad"])
    assert x.shape == (2, 1)
    assert predict(model, x).shape == (2, 2)
    for method in ("integrated_gradients", "occlusion", "kernel_shap"):
        result = explain(model, x, method, steps=128)
        assert result.extras["tokens"] == [["a", "good", "film"], ["bad"]]
        assert [len(a) for a in result.attributions] == [3, 1]
    assert explain(model, x, "integrated_gradients", steps=128).quality["completeness_gap"] < 0.01
