"""Bring-your-own models in the worker: a ``.keras`` file already checked as data (``ml.model_archive``) is
loaded with Keras's ``safe_mode=True``, tried once on a zero input, and described.

The order matters: ``load`` runs ``check_archive`` and the budget checks on the config before Keras reads the
file, so nothing in a refused file ever runs. Keras is imported on ``load``'s first call, never by the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml.budget import PREDICT_BATCH, check_memory, check_params, config_estimate
from ml.model_archive import check_archive
from tensorq.core.errors import InvalidRequest


def describe(model: Any) -> dict[str, Any]:
    """The signature of a loaded model: one input and one output, their shapes and dtypes."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InvalidRequest(
            "only models with one input and one output are accepted",
            details={"inputs": len(model.inputs), "outputs": len(model.outputs)},
        )
    dtype = str(model.inputs[0].dtype)
    input_shape = list(model.inputs[0].shape[1:])
    output_shape = list(model.outputs[0].shape[1:])
    classes = output_shape[0] if len(output_shape) == 1 and output_shape[0] and output_shape[0] > 1 else None
    from ml.encoding import encoder_of

    encoder = encoder_of(model)
    if encoder is not None:  # a table model of TensorQ's: rows of cells, its columns known by name
        columns = [{"name": c["name"], "type": c["type"]} for c in encoder.columns]
        return {
            "task": "classify" if classes else "regress",
            "input_shape": [len(columns)],
            "input_dtype": "string",
            "output_shape": output_shape,
            "num_classes": classes,
            "kind": "tabular",
            "feature_names": [c["name"] for c in columns],
            "class_names": None,
            "columns": columns,
        }
    if dtype == "string":
        if input_shape not in ([], [1]):
            raise InvalidRequest("a string-input model must take one string per row", details={"shape": input_shape})
    elif not dtype.startswith(("float", "int", "uint")):
        raise InvalidRequest(f"inputs of dtype {dtype} are not supported")
    text = dtype == "string"
    return {
        "task": "classify" if classes else "regress",
        "input_shape": None if text else input_shape,
        "input_dtype": "string" if text else "float32",
        "output_shape": output_shape,
        "num_classes": classes,
        "kind": "text" if text else ("image" if len(input_shape) == 3 else "tabular"),
        "feature_names": None,
        "class_names": None,
    }


def load(path: str | Path, max_params: int | None = None, max_memory_mb: int = 0) -> tuple[Any, dict[str, Any]]:
    """Check (with ``max_params`` and ``max_memory_mb``, the parameters its config declares and the memory a
    predict batch would need too, before Keras builds anything), then load with ``safe_mode=True`` and run
    once on a zero input; the model and its signature."""
    import keras

    import ml.custom_objects  # noqa: F401 - TensorQ's own classes load; nothing else custom does

    config = check_archive(path)
    estimate = config_estimate(config)
    if max_params is not None:
        check_params(estimate.params, max_params, "the uploaded model")
    check_memory(estimate.inference_bytes(PREDICT_BATCH), max_memory_mb, "the uploaded model")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure to rebuild the model is the file's fault
        raise InvalidRequest(f"the model could not be loaded safely: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, keras.Model):
        raise InvalidRequest("the file holds no Keras model")
    signature = describe(model)
    if signature["input_shape"] is not None and any(d is None for d in signature["input_shape"]):
        raise InvalidRequest("inputs must have a fixed shape (only the batch axis may vary)")
    try:
        if signature["input_dtype"] == "string":
            cells = int(np.prod(model.inputs[0].shape[1:]))  # a string of a text model, a table's cells
            probe: Any = np.asarray([""] * 2 * cells, dtype=object).reshape((2, *model.inputs[0].shape[1:]))
            import tensorflow as tf

            probe = tf.constant(probe.astype(str))
        else:
            probe = np.zeros((2, *signature["input_shape"]), dtype=np.float32)
        output = np.asarray(model(probe, training=False))
    except Exception as exc:  # noqa: BLE001 - a model that cannot run on its own input shape is refused
        raise InvalidRequest(f"the model does not run on its declared input: {type(exc).__name__}: {exc}") from None
    if not np.all(np.isfinite(output.astype(np.float64))):
        raise InvalidRequest("the model's output on a zero input is not finite")
    return model, signature
