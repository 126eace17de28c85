"""Model files for the bring-your-own tests: a plain one, one with a Lambda that leaves a marker, broken archives."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np


def plain_model(path: Path, features: int = 4, classes: int = 3) -> Path:
    """A small softmax classifier saved as ``.keras``."""
    import keras

    inputs = keras.Input((features,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(hidden))
    model.save(path)
    return path


def lambda_model(path: Path, marker: Path) -> Path:
    """A model whose Lambda layer writes ``marker`` whenever it runs; the marker is removed after saving."""
    import keras

    target = str(marker)
    # A lambda, so its bytecode (and the marker's path) travels in config.json, as an attacker's would.
    leave_marker = lambda t: (open(target, "w").write("the model's code ran"), t * 2.0)[1]  # noqa: E731, SIM115
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Lambda(leave_marker)(inputs)))
    model.save(path)
    marker.unlink(missing_ok=True)  # building the model ran it once, here, in the test
    return path


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A zip archive with these entries, names taken as given (``../`` included)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def traversal_zip() -> bytes:
    """A ``.keras``-shaped zip that also carries a ``../`` entry."""
    return zip_bytes({"config.json": b"{}", "metadata.json": b"{}", "../../evil.py": b"print('x')"})


def h5_bytes() -> bytes:
    """The start of an HDF5 file (what a legacy ``.h5`` model is)."""
    return b"\x89HDF\r\n\x1a\n" + bytes(512)


def random_bytes(n: int = 4096, seed: int = 0) -> bytes:
    """Noise."""
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
