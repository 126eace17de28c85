"""Trainings leave no graph behind in TensorFlow's gradient registry, nor their model as garbage for later, and
dropping the registry's entries changes no result."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ml.datasets import Dataset
from ml.gradient_registry import custom_gradients, dropping_custom_gradients
from ml.training import TrainConfig, train


def _traced_step() -> tuple[tf.types.experimental.GenericFunction, weakref.ref]:
    """A traced function that differentiates through a graph-mode custom gradient; a weak reference to its graph."""

    @tf.custom_gradient
    def double(x: tf.Tensor) -> tuple[tf.Tensor, object]:
        return 2.0 * x, lambda dy: 3.0 * dy  # a gradient that differs from the true one, to see it is used

    @tf.function
    def step(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(double(x))
        return tape.gradient(y, x)

    concrete = step.get_concrete_function(tf.TensorSpec([None], tf.float32))
    return step, weakref.ref(concrete.graph)


def test_a_block_drops_the_custom_gradients_it_registered_and_the_traced_graph_still_runs() -> None:
    before = custom_gradients()
    with dropping_custom_gradients():
        step, graph = _traced_step()
        assert custom_gradients() == before + 1
    assert custom_gradients() == before
    np.testing.assert_array_equal(step(tf.constant([1.0, 2.0])).numpy(), [3.0, 3.0])  # the custom gradient, as traced
    del step
    gc.collect()
    assert graph() is None  # nothing holds the traced graph any more


def test_without_the_block_the_registry_keeps_the_graph() -> None:
    """What the block is for: TensorFlow itself keeps the entry, and the graph with it."""
    step, graph = _traced_step()
    del step
    gc.collect()
    assert graph() is not None


def test_trainings_leave_no_custom_gradient_and_give_the_same_history(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = Dataset(rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 3, size=64), "tabular")
    config = TrainConfig("mlp", {"hidden": [8]}, epochs=2, batch_size=16, seed=7)
    before = custom_gradients()
    first = train(config, data, tmp_path / "a")
    second = train(config, data, tmp_path / "b")
    assert custom_gradients() == before
    for name in first.history:
        np.testing.assert_allclose(first.history[name], second.history[name], rtol=0, atol=1e-6)


def test_a_training_leaves_no_model_behind_for_a_later_collection(tmp_path: Path) -> None:
    def models() -> int:
        return sum(1 for o in gc.get_objects() if isinstance(o, keras.Model))  # uncollected cycles included

    rng = np.random.default_rng(1)
    data = Dataset(rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 2, size=32), "tabular")
    gc.collect()  # earlier tests' garbage in this process: the training's own collection would free it too
    before = models()
    train(TrainConfig("mlp", {"hidden": [4]}, epochs=1, seed=1), data, tmp_path)
    assert models() == before
