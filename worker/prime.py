"""Priming a pool child's TensorFlow before its first job, where the job memory ceiling is low.

The ceiling (``worker/memory.py``) caps a job's address space at the process's size when the job starts plus
``TENSORQ_JOB_MEMORY_MB``. A process's first training maps about a gigabyte of address space that it barely
touches (TensorFlow's thread pools and their stacks and malloc arenas, ``tf.data``'s runtime, Keras's traced
steps) and keeps it for good: that is the runtime's, not the job's. Below ``PRIME_BELOW_MB`` of headroom the
child pays that once at start, training a one-layer model for one step on two rows through ``tf.data``, so a
job's ceiling bounds what the job itself adds; above it (the default 8 GiB) nothing is primed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

PRIME_BELOW_MB = 2048


def prime_tensorflow() -> None:
    """Run one tiny ``fit`` on a ``tf.data`` generator, so the runtime's one-time mappings exist."""
    import keras
    import numpy as np
    import tensorflow as tf

    def rows() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        yield np.zeros((2, 2), dtype=np.float32), np.zeros(2, dtype=np.int64)

    signature = (tf.TensorSpec((None, 2), tf.float32), tf.TensorSpec((None,), tf.int64))
    data = tf.data.Dataset.from_generator(rows, output_signature=signature).prefetch(2)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data, epochs=1, verbose=0)
    model.evaluate(data, verbose=0)
    keras.backend.clear_session()
    log.info("TensorFlow primed for a job memory ceiling")
