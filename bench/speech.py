"""The speech figure: an ``audio_cnn`` train job on ``builtin:spoken_digits`` against the same training as a
plain Keras script in the bench's own process (same clips, same split, same model, same epochs)."""

from __future__ import annotations

import time
from typing import Any

from bench.context import Context
from bench.jobs import median_parts, run_job
from bench.measure import Stopwatch
from bench.specs import Measurement

PARAMS = {"sample_rate": 8000, "clip_seconds": 0.6, "filters": [16, 32], "dense": 32, "n_mels": 32}
LEARNING_RATE = 0.002
TEST_SPLIT = 0.2


def plain_training(cache_dir: Any, epochs: int, batch_size: int, seed: int) -> dict[str, float]:
    """The script a person would write: load the clips, split, build, compile, fit, evaluate."""
    import keras

    from ml import builders
    from ml.datasets import load_spoken_digits, split
    from ml.specs import AudioCnnParams

    watch = Stopwatch()
    start = time.perf_counter()
    params = AudioCnnParams(**PARAMS)
    keras.utils.set_random_seed(seed)
    data = load_spoken_digits(cache_dir, params.sample_rate, params.clip_samples)
    train, test = split(data, TEST_SPLIT, seed)
    model = builders.get("audio_cnn")((params.clip_samples,), 10, params)
    model.compile(keras.optimizers.Adam(LEARNING_RATE), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train.x, train.y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    accuracy = model.evaluate(test.x, test.y, batch_size=1024, verbose=0, return_dict=True)["accuracy"]
    return {"total_s": time.perf_counter() - start, "cpu_s": watch.read().cpu_s, "test_accuracy": float(accuracy)}


def speech_train(ctx: Context, run: int) -> list[Measurement]:
    """The train job (claim to succeeded) against ``plain_training``; both test accuracies in the details."""
    from ml import spoken_digits

    cache = ctx.stack.settings.cache_dir()
    spoken_digits.clips(cache)  # made once before any timing, in the folder the worker reads
    seed = 200 + run
    epochs, batch_size = ctx.sizes.speech_epochs, ctx.sizes.batch_size
    spec = {"architecture": "audio_cnn", "params": PARAMS, "dataset": "builtin:spoken_digits", "epochs": epochs}
    spec |= {"batch_size": batch_size, "validation_split": 0.0, "test_split": TEST_SPLIT, "seed": seed}
    spec |= {"learning_rate": LEARNING_RATE, "model_name": "bench-speech"}
    with ctx.client() as client:
        before = ctx.stack.worker.child_cpu_seconds()
        done = run_job(client, "train", spec, timeout=7200)
        done.worker_cpu_s = ctx.stack.worker.child_cpu_seconds() - before
    plain = plain_training(cache, epochs, batch_size, seed)
    details = {
        **median_parts([done]),
        "epochs": float(epochs),
        "test_accuracy": float(done.job.result["metrics"].get("test_accuracy", float("nan"))),
        "baseline_test_accuracy": plain["test_accuracy"],
    }
    return [
        Measurement("speech_train_time", done.job_s, plain["total_s"], details),
        Measurement("speech_train_cpu", done.worker_cpu_s, plain["cpu_s"]),
    ]
