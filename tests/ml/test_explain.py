"""Integrated gradients: completeness, agreement with a plain one-point-at-a-time version, and checks."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ml.catalog import EXPLAIN_METHODS
from ml.explain import explain, integrated_gradients
from tensorq.core.errors import InvalidRequest, OutOfRange
from tests.ml.conftest import Trained


def _reference(model: object, x: np.ndarray, baseline: np.ndarray, target: int, steps: int) -> np.ndarray:
    """Integrated gradients written out plainly: one gradient per interpolation point, midpoint rule."""
    total = np.zeros_like(x, dtype=np.float64)
    for k in range(steps):
        point = tf.constant((baseline + (k + 0.5) / steps * (x - baseline))[None].astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(point)
            output = model(point, training=False)[0, target]
        total += tape.gradient(output, point).numpy()[0]
    return ((x - baseline) * total / steps).astype(np.float32)


def test_completeness_gap_under_one_percent_at_128_steps(trained_mlp: Trained) -> None:
    x = trained_mlp.held_out.x[:16]
    result = integrated_gradients(trained_mlp.model, x, steps=128, baseline="mean")
    gap = result.quality["completeness_gap"]
    print(f"\nIG mlp/breast_cancer, 16 inputs, 128 steps, mean baseline: max completeness gap {gap:.5f}")
    assert gap < 0.01
    assert result.attributions.shape == x.shape
    assert result.attributions.dtype == np.float32
    assert result.targets == result.predictions.argmax(axis=1).tolist()
    assert len(result.per_input_gap) == 16
    assert max(result.per_input_gap) == gap
    assert result.method == "integrated_gradients"
    # The gap is what it says: attributions sum to f(x) - f(baseline) for the explained class.
    rows = np.arange(16)
    base_out = np.asarray(trained_mlp.model(x.mean(axis=0, keepdims=True)))[0]
    difference = result.predictions[rows, result.targets] - base_out[result.targets]
    np.testing.assert_allclose(result.attributions.sum(axis=1), difference, atol=0.01 * np.abs(difference).max())


def test_completeness_on_images_from_a_black_baseline(trained_cnn: Trained) -> None:
    x = trained_cnn.held_out.x[:16]
    result = integrated_gradients(trained_cnn.model, x, steps=128)
    gap = result.quality["completeness_gap"]
    print(f"\nIG cnn/digits, 16 inputs, 128 steps, zeros baseline: max completeness gap {gap:.5f}")
    assert result.quality["completeness_gap"] < 0.01
    assert result.attributions.shape == (16, 8, 8, 1)


@pytest.mark.parametrize("baseline", ["zeros", "mean"])
def test_batched_agrees_with_one_point_at_a_time(trained_mlp: Trained, baseline: str) -> None:
    x, steps = trained_mlp.held_out.x[:3], 16
    targets = [0, 1, 1]
    base = np.zeros_like(x[0]) if baseline == "zeros" else x.mean(axis=0)
    expected = np.stack([_reference(trained_mlp.model, x[i], base, targets[i], steps) for i in range(3)])
    # batch_size 5 makes chunks that straddle inputs; 4096 puts every point in one call.
    for batch_size in (5, 4096):
        result = integrated_gradients(
            trained_mlp.model, x, target=targets, steps=steps, baseline=baseline, batch_size=batch_size
        )
        assert result.targets == targets
        np.testing.assert_allclose(result.attributions, expected, rtol=1e-4, atol=1e-4)


def test_array_baseline_and_single_target(trained_cnn: Trained) -> None:
    x = trained_cnn.held_out.x[:2]
    baseline = np.full((8, 8, 1), 3.0, dtype=np.float32)
    result = integrated_gradients(trained_cnn.model, x, target=7, steps=8, baseline=baseline)
    expected = _reference(trained_cnn.model, x[1], baseline, 7, 8)
    assert result.targets == [7, 7]
    np.testing.assert_allclose(result.attributions[1], expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(InvalidRequest) as caught:
        integrated_gradients(trained_cnn.model, x, baseline=np.zeros((8, 8)))
    assert caught.value.details["expected_shape"] == [8, 8, 1]


def test_explain_checks_method_steps_and_target(trained_mlp: Trained) -> None:
    x = trained_mlp.held_out.x[:2]
    with pytest.raises(InvalidRequest, match="known: integrated_gradients, smoothgrad") as caught:
        explain(trained_mlp.model, x, "deeplift")
    assert caught.value.details == {"known": list(EXPLAIN_METHODS)}
    for steps in (0, 1025):
        with pytest.raises(OutOfRange) as out:
            explain(trained_mlp.model, x, "integrated_gradients", steps=steps)
        assert out.value.details["field"] == "steps"
    with pytest.raises(OutOfRange):
        explain(trained_mlp.model, x, "integrated_gradients", target=2)
    with pytest.raises(InvalidRequest):
        explain(trained_mlp.model, x, "integrated_gradients", target=[0])
    with pytest.raises(InvalidRequest):
        explain(trained_mlp.model, x, "integrated_gradients", baseline="noise")
    result = explain(trained_mlp.model, x, "integrated_gradients", steps=4)
    assert result.attributions.shape == (2, 30)
