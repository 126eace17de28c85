"""The builder registry and the mlp and cnn builders' parameters and layers."""

from __future__ import annotations

import keras
import pytest

from api.errors import http_status
from ml import builders
from ml.specs import ARCHITECTURE_PARAMS, CnnParams, MlpParams, RecommenderParams, RnnParams, VaeParams
from tensorq.core.errors import InvalidRequest, OutOfRange


def test_unknown_architecture_lists_the_known_ones() -> None:
    with pytest.raises(InvalidRequest) as caught:
        builders.get("transformer")
    assert caught.value.message.startswith("unknown architecture 'transformer'; known: mlp, cnn")
    assert caught.value.details == {"known": builders.known()}
    assert {"mlp", "cnn"} <= set(builders.known())


def test_registered_builders_are_found_by_name() -> None:
    @builders.register("tiny_for_test")
    def tiny(input_shape: tuple[int, ...], num_classes: int, params: dict) -> keras.Model:
        """A softmax layer and nothing else."""
        inputs = keras.Input(input_shape)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(inputs))

    try:
        assert builders.get("tiny_for_test") is tiny
        assert "tiny_for_test" in builders.known()
    finally:
        builders._BUILDERS.pop("tiny_for_test")


@pytest.mark.parametrize(
    ("name", "args", "params", "typed"),
    [
        ("mlp", ((4,), 2), {"hidden": [8]}, MlpParams(hidden=[8])),
        ("cnn", ((8, 8, 1), 2), {}, CnnParams()),
        ("rnn", ((), 2), {"cell": "gru"}, RnnParams(cell="gru")),
        ("vae", ((4,), 0), {"latent_dim": 2}, VaeParams(latent_dim=2)),
        ("recommender", (["a"], ["b"], 3.0), {"factors": 4}, RecommenderParams(factors=4)),
    ],
)
def test_builders_get_only_params_validated_by_the_specs(name: str, args: tuple, params: dict, typed) -> None:
    """ml.specs is the one place that checks params: a builder runs only on its validated params model."""
    builders.get(name)  # imports and registers the real builder
    seen: list = []
    real = builders._BUILDERS[name]
    builders._BUILDERS[name] = lambda *given: seen.append(given[-1])
    try:
        builders.get(name)(*args, params)
        assert seen == [typed]
        assert type(seen[0]) is ARCHITECTURE_PARAMS[name]
        builders.get(name)(*args, typed)
        assert seen[-1] is typed
        with pytest.raises(OutOfRange):
            builders.get(name)(*args, {**params, next(iter(ARCHITECTURE_PARAMS[name].model_fields)): -1})
        with pytest.raises(InvalidRequest):
            builders.get(name)(*args, {"no_such_param": 1})
        assert len(seen) == 2
    finally:
        builders._BUILDERS[name] = real


def test_no_builder_repeats_a_range_check_of_the_specs() -> None:
    """The architectures read their typed params; none of them checks a range or a choice of its own."""
    from pathlib import Path

    import ml.architectures

    for source in Path(ml.architectures.__file__).parent.glob("*.py"):
        text = source.read_text()
        assert "check_" not in text, source.name
        assert "DEFAULTS" not in text, source.name


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_unknown_params_list_the_allowed_ones(name: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        builders.get(name)((8, 8, 1), 10, {"layers": 3})
    assert "layers" in caught.value.message
    assert "dropout" in caught.value.details["allowed"]


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("mlp", {"dropout": 0.95}, "params.dropout"),
        ("mlp", {"hidden": [64, 0]}, "params.hidden"),
        ("mlp", {"hidden": "wide"}, "params.hidden"),
        ("mlp", {"activation": "softplus!"}, "params.activation"),
        ("cnn", {"filters": []}, "params.filters"),
        ("cnn", {"dense": 1.5}, "params.dense"),
        ("cnn", {"dropout": "none"}, "params.dropout"),
    ],
)
def test_bad_param_values_are_out_of_range(name: str, params: dict, field: str) -> None:
    with pytest.raises(OutOfRange) as caught:
        builders.get(name)((8, 8, 1), 10, params)
    assert caught.value.details["field"] == field
    assert http_status(caught.value) == 422


def _layer_types(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_mlp_defaults() -> None:
    model = builders.get("mlp")((30,), 2, {})
    assert _layer_types(model) == [
        "InputLayer",
        "Normalization",
        "Dense",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)] == [64, 32, 2]
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.output_shape == (None, 2)


def test_mlp_flattens_images() -> None:
    model = builders.get("mlp")((8, 8, 1), 10, {"hidden": [16], "dropout": 0.0})
    assert "Flatten" in _layer_types(model)
    assert model.output_shape == (None, 10)


def test_cnn_is_the_keras_mnist_convnet_adapted_to_8x8() -> None:
    model = builders.get("cnn")((8, 8, 1), 10, {})
    assert _layer_types(model) == [
        "InputLayer",
        "Normalization",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert model.layers[1].axis == ()  # one mean and variance for all pixels
    assert model.get_layer("flatten").output.shape == (None, 2 * 2 * 64)
    assert model.output_shape == (None, 10)


def test_cnn_skips_pooling_that_would_shrink_below_2_pixels() -> None:
    model = builders.get("cnn")((4, 4, 1), 3, {"filters": [8, 8, 8]})
    assert _layer_types(model).count("MaxPooling2D") == 1
    big = builders.get("cnn")((28, 28, 1), 10, {})
    assert big.get_layer("flatten").output.shape == (None, 7 * 7 * 64)


def test_cnn_needs_images() -> None:
    with pytest.raises(InvalidRequest, match="images"):
        builders.get("cnn")((30,), 2, {})


@pytest.mark.parametrize(("name", "shape"), [("mlp", (5,)), ("cnn", (8, 8, 1))])
def test_builders_use_no_lambda_layers(name: str, shape: tuple[int, ...]) -> None:
    model = builders.get(name)(shape, 3, {})
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
