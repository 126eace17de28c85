"""SmoothGrad, occlusion, Kernel and Gradient SHAP (through shap) and LIME (through lime) on numeric inputs."""

from __future__ import annotations

import numpy as np
import pytest
import shap

from api.errors import http_status
from ml.explain import QUALITY, explain
from tensorq.core.errors import InvalidRequest, OutOfRange
from tests.ml.conftest import Trained


def test_kernel_shap_is_what_shap_kernel_explainer_gives(trained_mlp: Trained) -> None:
    model = trained_mlp.model
    x, background = trained_mlp.held_out.x[:3], trained_mlp.held_out.x[10:20]
    result = explain(model, x, "kernel_shap", background=background, nsamples=400, seed=7)

    # The documented recipe: per input, its class's probability, numpy's generator seeded, every feature kept.
    targets = np.asarray(model(x)).argmax(axis=1)
    assert result.targets == targets.tolist()
    for i, t in enumerate(targets):
        explainer = shap.KernelExplainer(lambda rows, t=t: np.asarray(model(rows.astype(np.float32)))[:, t], background)
        np.random.seed(7)
        expected = np.asarray(explainer.shap_values(x[i : i + 1], nsamples=400, l1_reg=False, silent=True))
        np.testing.assert_allclose(result.attributions[i], expected.reshape(30), rtol=1e-5, atol=1e-6)
        assert result.extras["expected_values"][i] == pytest.approx(float(explainer.expected_value), rel=1e-6)
    gap = result.quality["additivity_gap"]
    print(f"\nkernel_shap mlp/breast_cancer: additivity gap {gap:.2e}")
    assert gap < 0.01
    assert len(result.per_input_quality) == 3


def test_kernel_shap_on_images_adds_up(trained_cnn: Trained) -> None:
    x = trained_cnn.held_out.x[:2]
    result = explain(trained_cnn.model, x, "kernel_shap", target=[3, 5], nsamples=600)
    assert result.attributions.shape == (2, 8, 8, 1)
    assert result.targets == [3, 5]
    assert result.quality["additivity_gap"] < 0.01
    # Pixels equal to the (black) baseline cannot matter: their SHAP value is zero.
    assert np.all(result.attributions[x == 0] == 0)


@pytest.mark.filterwarnings("ignore:The structure of `inputs`")
def test_gradient_shap_is_what_shap_gradient_explainer_gives(trained_mlp: Trained) -> None:
    model = trained_mlp.model
    x, background = trained_mlp.held_out.x[:4], trained_mlp.held_out.x[20:40]
    result = explain(model, x, "gradient_shap", background=background, nsamples=300, seed=2)
    targets = np.asarray(model(x)).argmax(axis=1)
    values, _ = shap.GradientExplainer(model, background).shap_values(
        x, nsamples=300, ranked_outputs=targets[:, None], output_rank_order="custom", rseed=2
    )
    np.testing.assert_allclose(result.attributions, np.asarray(values)[..., 0], rtol=1e-4, atol=1e-6)
    # Expected gradients are a Monte Carlo estimate: the gap is reported, not small by construction.
    print(f"\ngradient_shap mlp/breast_cancer, 300 samples: additivity gap {result.quality['additivity_gap']:.4f}")
    assert np.isfinite(result.quality["additivity_gap"])
    assert len(result.extras["expected_values"]) == 4
    again = explain(model, x, "gradient_shap", background=background, nsamples=300, seed=2)
    np.testing.assert_array_equal(again.attributions, result.attributions)


def test_smoothgrad_is_seeded_and_settles_with_more_samples(trained_cnn: Trained) -> None:
    x = trained_cnn.held_out.x[:3]
    few = explain(trained_cnn.model, x, "smoothgrad", samples=8, noise=0.1, seed=1)
    same = explain(trained_cnn.model, x, "smoothgrad", samples=8, noise=0.1, seed=1)
    many = explain(trained_cnn.model, x, "smoothgrad", samples=256, noise=0.1, seed=1)
    np.testing.assert_array_equal(few.attributions, same.attributions)
    assert few.attributions.shape == (3, 8, 8, 1)
    assert many.quality["relative_stderr"] < few.quality["relative_stderr"]
    # No noise: one gradient, times the input (from a black baseline).
    plain = explain(trained_cnn.model, x, "smoothgrad", samples=1, noise=0.0)
    ig_one_step = explain(trained_cnn.model, x, "integrated_gradients", steps=1)
    assert plain.attributions.shape == ig_one_step.attributions.shape


def test_occlusion_is_the_drop_when_a_window_is_blacked_out(trained_mlp: Trained, trained_cnn: Trained) -> None:
    model, x = trained_mlp.model, trained_mlp.held_out.x[:2]
    result = explain(model, x, "occlusion", window=1, baseline="mean")
    base = x.mean(axis=0)
    occluded = np.repeat(x[:1], 30, axis=0)
    occluded[np.arange(30), np.arange(30)] = base
    t = result.targets[0]
    drops = np.asarray(model(x[:1]))[0, t] - np.asarray(model(occluded))[:, t]
    np.testing.assert_allclose(result.attributions[0], drops, rtol=1e-4, atol=1e-6)
    assert "additivity_gap" in result.quality
    images = explain(trained_cnn.model, trained_cnn.held_out.x[:2], "occlusion", window=3, stride=2)
    assert images.attributions.shape == (2, 8, 8, 1)
    assert np.allclose(images.attributions[0, :, :, 0], images.attributions[0, :, :, 0])  # every pixel covered


def test_lime_reports_its_local_fit_and_is_seeded(trained_cnn: Trained, trained_mlp: Trained) -> None:
    x = trained_cnn.held_out.x[:2]
    result = explain(trained_cnn.model, x, "lime", nsamples=500, seed=4, window=2)
    assert result.attributions.shape == (2, 8, 8, 1)
    # window 2: one weight per 2x2 patch
    assert np.all(result.attributions[0, 0, 0] == result.attributions[0, 1, 1])
    assert -1.0 <= result.quality["local_fit_r2"] <= 1.0
    assert len(result.per_input_quality) == 2
    again = explain(trained_cnn.model, x, "lime", nsamples=500, seed=4, window=2)
    np.testing.assert_array_equal(again.attributions, result.attributions)
    tabular = explain(trained_mlp.model, trained_mlp.held_out.x[:2], "lime", baseline="mean")
    print(f"\nlime mlp/breast_cancer, 1000 samples: local fit R^2 {tabular.quality['local_fit_r2']:.3f}")
    assert tabular.attributions.shape == (2, 30)
    assert tabular.quality["local_fit_r2"] > 0.5


@pytest.mark.parametrize("method", list(QUALITY))
def test_every_method_explains_the_predicted_class_and_names_its_figure(trained_mlp: Trained, method: str) -> None:
    x = trained_mlp.held_out.x[:2]
    result = explain(trained_mlp.model, x, method, baseline="mean", nsamples=100, samples=4, steps=8)
    assert result.method == method
    assert list(result.quality) == [QUALITY[method]]
    assert result.targets == np.asarray(trained_mlp.model(x)).argmax(axis=1).tolist()
    assert np.asarray(result.attributions).shape == (2, 30)
    forced = explain(trained_mlp.model, x, method, target=0, baseline="mean", nsamples=100, samples=4, steps=8)
    assert forced.targets == [0, 0]


@pytest.mark.parametrize(
    ("method", "options", "field"),
    [
        ("occlusion", {"window": 0}, "window"),
        ("occlusion", {"stride": 5000}, "stride"),
        ("smoothgrad", {"samples": 2000}, "samples"),
        ("smoothgrad", {"noise": 1.5}, "noise"),
        ("kernel_shap", {"nsamples": 0}, "nsamples"),
        ("lime", {"seed": -1}, "seed"),
    ],
)
def test_options_out_of_range_are_422_naming_the_field(
    trained_mlp: Trained, method: str, options: dict, field: str
) -> None:
    with pytest.raises(OutOfRange) as caught:
        explain(trained_mlp.model, trained_mlp.held_out.x[:1], method, **options)
    assert caught.value.details["field"] == field
    assert http_status(caught.value) == 422


def test_background_must_match_the_inputs(trained_mlp: Trained) -> None:
    with pytest.raises(InvalidRequest, match="background"):
        explain(trained_mlp.model, trained_mlp.held_out.x[:1], "kernel_shap", background=np.zeros((3, 4)))
    with pytest.raises(InvalidRequest, match="unknown explain options"):
        explain(trained_mlp.model, trained_mlp.held_out.x[:1], "lime", kernel_width=3)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"standardize": "lower", "split": "whitespace"},
        {"standardize": None, "split": "character"},
        {"ngrams": 2, "output_sequence_length": 5},
    ],
)
def test_text_tokens_are_the_words_the_vectorizer_looks_up(options: dict) -> None:
    import keras

    from ml.explainers.units import tokens

    vectorize = keras.layers.TextVectorization(**options)
    corpus = ["The cat, the HAT!", "a dog's bone; the end", "über naïve café"]
    vectorize.adapt(corpus)
    model = keras.Sequential([keras.Input(shape=(), dtype="string"), vectorize])
    vocabulary = vectorize.get_vocabulary()
    for text in [*corpus, "An unseen, new text: the cat"]:
        words = tokens(model, text)
        ids = np.asarray(vectorize(np.asarray([text]))).ravel().tolist()
        expected = [vocabulary.index(w) if w in vocabulary else 1 for w in words]
        assert ids[: len(words)] == expected
        assert all(i == 0 for i in ids[len(words) :])  # only padding after the words
