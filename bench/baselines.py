"""The in-process baselines: the same TensorFlow work called directly in this plain Python process.

TensorFlow is imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import Stopwatch, Timing


def as_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) images as the float32 (N, H, W, 1) batch the models take."""
    return np.asarray(x, dtype=np.float32)[..., None]


def train(x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, validation_split: float, seed: int) -> dict:
    """``model.fit`` of the built-in CNN as a plain Keras script would: seconds for build+fit and fit alone."""
    import keras

    from ml import builders

    x = as_images(x)
    keras.utils.set_random_seed(seed)
    watch = Stopwatch()
    start = time.perf_counter()
    model = builders.get("cnn")(tuple(x.shape[1:]), int(y.max()) + 1, {})
    cut = int(len(x) * (1 - validation_split))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.adapt(x[:cut])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    built = time.perf_counter()
    history = model.fit(
        x, y, batch_size=batch_size, epochs=epochs, validation_split=validation_split, shuffle=True, verbose=0
    )
    done = time.perf_counter()
    return {
        "cpu_s": watch.read().cpu_s,
        "total_s": done - start,
        "fit_s": done - built,
        "build_s": built - start,
        "val_accuracy": float(history.history.get("val_accuracy", [float("nan")])[-1]),
    }


def load(path: str | Path) -> Any:
    """The model at ``path`` through ``ml.inference.load_model`` (what the worker uses)."""
    from ml.inference import load_model

    return load_model(path)


def predict(model: Any, x: np.ndarray) -> Timing:
    """How long ``ml.inference.predict`` takes on ``x``, after an untimed call on the same rows."""
    from ml.inference import predict as infer

    x = as_images(x)
    infer(model, x)
    watch = Stopwatch()
    infer(model, x)
    return watch.read()


def integrated_gradients(model: Any, x: np.ndarray, steps: int) -> Timing:
    """How long ``ml.explain.integrated_gradients`` takes on ``x``, after an untimed call at the same shapes."""
    from ml.explain import integrated_gradients as ig

    x = as_images(x)
    ig(model, x, steps=steps)
    watch = Stopwatch()
    ig(model, x, steps=steps)
    return watch.read()


def tape_passes(model: Any, x: np.ndarray, steps: int) -> Timing:
    """How long ``steps`` batched forward+backward GradientTape passes over all of ``x`` (scaled inputs) take."""
    import tensorflow as tf

    inputs = tf.constant(as_images(x))
    targets = tf.argmax(model(inputs, training=False), axis=1)

    def one_pass(alpha: float) -> tf.Tensor:
        points = inputs * alpha
        with tf.GradientTape() as tape:
            tape.watch(points)
            chosen = tf.gather(model(points, training=False), targets, axis=1, batch_dims=1)
        return tape.gradient(chosen, points)

    one_pass(0.5).numpy()
    watch = Stopwatch()
    total = tf.zeros_like(inputs)
    for k in range(steps):
        total += one_pass((k + 0.5) / steps)
    total.numpy()
    return watch.read()


def heatmaps(x: np.ndarray, count: int) -> float:
    """Seconds ``ml.heatmap.save_heatmap`` takes to write ``count`` PNGs (a part of every image explain job)."""
    from ml.heatmap import save_heatmap

    images = as_images(x[:count])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        for i, image in enumerate(images):
            save_heatmap(image, rng.normal(size=image.shape).astype(np.float32), Path(folder) / f"h{i}.png")
        return time.perf_counter() - start
