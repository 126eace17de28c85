"""Bring-your-own models: a ``.keras`` file is checked before anything in it runs, then loaded safely and described.

The order matters. ``check_archive`` reads the zip's entry names and ``config.json`` as data (no Keras):
refused are anything but the ``.keras`` layout, absolute or ``..`` entry names, ``Lambda`` and
``TFSMLayer`` layers and serialised Python code, and any class that is neither Keras's own nor one of
TensorQ's registered classes (``ml.custom_objects``). Only then does ``load`` hand the file to Keras,
with ``safe_mode=True``, and try the model once on a zero input. Importing this module does not import
TensorFlow, so the API may use ``check_zip``.
"""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ml.budget import PREDICT_BATCH, check_memory, check_params, config_estimate
from ml.catalog import REGISTERED_CLASSES
from tensorq import bounded_json
from tensorq.errors import InvalidRequest

REQUIRED = ("config.json", "metadata.json")
MAX_ENTRIES = 10_000
MAX_UNCOMPRESSED = 8 * 1024**3
MAX_CONFIG_BYTES = 64 * 1024**2
# Nested functional models add a few levels each; deeper configs are refused before they are walked.
MAX_CONFIG_DEPTH = 128
# Layers that run code or read files named in the config, whatever module they claim.
DENIED_CLASSES = frozenset({"Lambda", "TFSMLayer", "__lambda__"})


def staging_path(artifact_dir: str | Path, tenant_id: str, upload_id: str) -> Path:
    """Where an uploaded ``.keras`` file waits for its import job (the API writes it, the worker reads it)."""
    try:
        upload = str(uuid.UUID(str(upload_id)))
    except ValueError:
        raise InvalidRequest("malformed upload id") from None
    if not tenant_id or "/" in tenant_id or tenant_id.startswith("."):
        raise InvalidRequest("malformed tenant id")
    return Path(artifact_dir) / "uploads" / "models" / tenant_id / f"{upload}.keras"


def _entry_name_ok(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return bool(name) and not name.startswith(("/", "\\")) and ".." not in parts and ":" not in parts[0]


def check_entries(archive: zipfile.ZipFile) -> None:
    """The zip looks like a ``.keras`` file: ``config.json`` and ``metadata.json``, safe names, bounded sizes."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InvalidRequest(f"a .keras file has at most {MAX_ENTRIES} entries")
    bad = [info.filename for info in infos if not _entry_name_ok(info.filename)]
    if bad:
        raise InvalidRequest("the archive has absolute or '..' entry names", details={"entries": bad[:10]})
    names = {info.filename for info in infos}
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise InvalidRequest(
            "not a .keras model file (a zip with config.json and metadata.json)", details={"missing": missing}
        )
    if sum(info.file_size for info in infos) > MAX_UNCOMPRESSED:
        raise InvalidRequest("the .keras file unpacks to more than the allowed size")


def check_zip(path: str | Path) -> None:
    """``check_entries`` on the file at ``path``; anything that is not a zip is an InvalidRequest."""
    try:
        with zipfile.ZipFile(path) as archive:
            check_entries(archive)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidRequest(f"not a .keras model file (a zip archive): {exc}") from None


def _walk(node: Any, path: str, found: list[dict[str, str]]) -> None:
    """Collect every serialised object in ``node`` that is refused."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]", found)
        return
    if not isinstance(node, dict):
        return
    class_name = node.get("class_name")
    if isinstance(class_name, str):
        module = node.get("module")
        registered = node.get("registered_name")
        ours = registered in REGISTERED_CLASSES
        keras_own = module is None or module == "keras" or str(module).startswith("keras.")
        internal = class_name.startswith("__") and module is None
        if class_name in DENIED_CLASSES:
            found.append({"at": path, "class_name": class_name, "why": "runs code from the file"})
        elif not ours and not internal and (not keras_own or registered not in (None, "function", class_name)):
            found.append({"at": path, "class_name": class_name, "why": "a custom object", "module": str(module)})
    for key, value in node.items():
        _walk(value, f"{path}.{key}" if path else key, found)


def check_config(config: Any) -> None:
    """Refuse a model config with Lambda layers, serialised code, or classes that are not Keras's or TensorQ's."""
    found: list[dict[str, str]] = []
    _walk(config, "", found)
    if not found:
        return
    if any(item["why"] == "runs code from the file" for item in found):
        names = sorted(
            {item["class_name"] for item in found if item["why"] == "runs code from the file"} - {"__lambda__"}
        )
        what = f"{', '.join(names)} layers" if names else "serialised Python functions"
        raise InvalidRequest(
            f"the model has {what}, which run code stored in the file; they are not accepted",
            details={"refused": found[:20]},
        )
    raise InvalidRequest(
        "the model uses custom objects that are not part of Keras; only built-in layers are accepted",
        details={"refused": found[:20]},
    )


def check_archive(path: str | Path) -> dict[str, Any]:
    """The ``.keras`` file's parsed ``config.json`` after every check on its layout and content."""
    try:
        with zipfile.ZipFile(path) as archive:
            check_entries(archive)
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise InvalidRequest("config.json is too large")
            config = bounded_json.loads(archive.read(info), what="config.json", max_depth=MAX_CONFIG_DEPTH)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidRequest(f"not a .keras model file (a zip archive): {exc}") from None
    if not isinstance(config, dict):
        raise InvalidRequest("config.json does not describe a model")
    check_config(config)
    return config


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
