"""A ``.keras`` upload read as data, before anything in it runs: the API's check of an upload and the worker's
first step of its import. Nothing here imports TensorFlow or Keras (``tests/test_boundaries.py`` holds it).

``check_archive`` reads the zip's entry names and ``config.json`` with ``zipfile`` and ``json``: refused are
anything but the ``.keras`` layout, absolute or ``..`` entry names, ``Lambda`` and ``TFSMLayer`` layers and
serialised Python code, and any class that is neither Keras's own nor one of TensorQ's registered classes
(``ml.custom_objects``). ``check_zip`` is the API's cheap check of the layout alone.
"""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path
from typing import Any

from ml.catalog import REGISTERED_CLASSES
from tensorq.core import bounded_json
from tensorq.core.errors import InvalidRequest

REQUIRED = ("config.json", "metadata.json")
MAX_ENTRIES = 10_000
MAX_UNCOMPRESSED = 8 * 1024**3
MAX_CONFIG_BYTES = 64 * 1024**2
# Nested functional models add a few levels each; deeper configs are refused before they are walked.
MAX_CONFIG_DEPTH = 128
# Layers that run code or read files named in the config, whatever module they claim.
DENIED_CLASSES = frozenset({"Lambda", "TFSMLayer", "__lambda__"})


def staging_key(tenant_id: str, upload_id: str) -> str:
    """Where, under the artifact store's root, an uploaded ``.keras`` file waits for its import job (the API
    writes it, the worker reads it)."""
    try:
        upload = str(uuid.UUID(str(upload_id)))
    except ValueError:
        raise InvalidRequest("malformed upload id") from None
    if not tenant_id or "/" in tenant_id or tenant_id.startswith("."):
        raise InvalidRequest("malformed tenant id")
    return f"uploads/models/{tenant_id}/{upload}.keras"


def staging_path(artifact_dir: str | Path, tenant_id: str, upload_id: str) -> Path:
    """``staging_key`` under a file store's folder ``artifact_dir``."""
    return Path(artifact_dir) / staging_key(tenant_id, upload_id)


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
