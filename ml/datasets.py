"""Datasets: scikit-learn built-ins, uploaded ``.npz`` and ``.csv``, and MNIST-format ``.npz`` files."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.catalog import BUILTIN_DATASETS
from tensorq.errors import InvalidRequest

BUILTINS = BUILTIN_DATASETS


@dataclass
class Dataset:
    """Features ``x`` (float32) and integer labels ``y``; ``kind`` is "tabular" or "image"."""

    x: np.ndarray
    y: np.ndarray
    kind: str
    feature_names: list[str] | None = None
    class_names: list[str] | None = None


def _from_arrays(x: np.ndarray, y: np.ndarray) -> Dataset:
    if len(x) != len(y):
        raise InvalidRequest("x and y have different lengths", details={"x": len(x), "y": len(y)})
    if x.ndim == 2:
        return Dataset(x.astype(np.float32), y.astype(np.int64), "tabular")
    if x.ndim == 3:
        return Dataset(x[..., None].astype(np.float32), y.astype(np.int64), "image")
    if x.ndim == 4:
        return Dataset(x.astype(np.float32), y.astype(np.int64), "image")
    raise InvalidRequest(f"x must have 2 (tabular), 3 or 4 (images) dimensions, not {x.ndim}")


def load_builtin(name: str) -> Dataset:
    """One of scikit-learn's bundled datasets: digits (8x8 images), breast_cancer, iris, wine."""
    from sklearn import datasets as sk

    loaders = {
        "digits": sk.load_digits,
        "breast_cancer": sk.load_breast_cancer,
        "iris": sk.load_iris,
        "wine": sk.load_wine,
    }
    if name not in loaders:
        raise InvalidRequest(f"unknown builtin dataset '{name}'; known: {', '.join(BUILTINS)}")
    bunch = loaders[name]()
    if name == "digits":
        return Dataset(
            bunch.images[..., None].astype(np.float32),
            bunch.target.astype(np.int64),
            "image",
            class_names=[str(c) for c in bunch.target_names],
        )
    return Dataset(
        bunch.data.astype(np.float32),
        bunch.target.astype(np.int64),
        "tabular",
        feature_names=[str(f) for f in bunch.feature_names],
        class_names=[str(c) for c in bunch.target_names],
    )


def load_npz(path: str | Path) -> Dataset:
    """An ``.npz`` with arrays ``x`` and ``y``, loaded without pickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not {"x", "y"} <= set(archive.files):
                raise InvalidRequest("an .npz dataset needs arrays 'x' and 'y'", details={"arrays": archive.files})
            return _from_arrays(archive["x"], archive["y"])
    except ValueError as exc:
        raise InvalidRequest(f"unreadable .npz: {exc}") from None


def load_mnist_npz(path: str | Path) -> Dataset:
    """A Keras MNIST-format ``.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``), train and test joined."""
    with np.load(path, allow_pickle=False) as archive:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
        if missing:
            raise InvalidRequest("not an MNIST-format .npz", details={"missing": sorted(missing)})
        x = np.concatenate([archive["x_train"], archive["x_test"]])
        y = np.concatenate([archive["y_train"], archive["y_test"]])
    return _from_arrays(x, y)


def load_csv(path: str | Path, label_column: str, max_rows: int = 1_000_000, max_columns: int = 10_000) -> Dataset:
    """A CSV with a header; numeric feature columns and a label column of integers or strings."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None) or []
        if len(header) > max_columns:
            raise InvalidRequest(f"at most {max_columns} columns")
        if label_column not in header:
            raise InvalidRequest(f"label column '{label_column}' not in the CSV", details={"columns": header})
        rows = []
        for i, row in enumerate(reader):
            if i >= max_rows:
                raise InvalidRequest(f"at most {max_rows} rows")
            if row:
                rows.append(row)
    label_at = header.index(label_column)
    features = [name for j, name in enumerate(header) if j != label_at]
    x = np.empty((len(rows), len(features)), dtype=np.float32)
    for j_out, j_in in enumerate(j for j in range(len(header)) if j != label_at):
        try:
            x[:, j_out] = [float(row[j_in]) for row in rows]
        except ValueError:
            raise InvalidRequest(f"column '{header[j_in]}' is not numeric") from None
    labels = [row[label_at] for row in rows]
    try:
        y = np.asarray([int(v) for v in labels], dtype=np.int64)
        class_names = None
    except ValueError:
        class_names = sorted(set(labels))
        index = {name: i for i, name in enumerate(class_names)}
        y = np.asarray([index[v] for v in labels], dtype=np.int64)
    return Dataset(x, y, "tabular", feature_names=features, class_names=class_names)


def load_file(path: str | Path, fmt: str, label_column: str | None = None) -> Dataset:
    """Load an uploaded dataset by its recorded format."""
    if fmt == "npz":
        return load_npz(path)
    if fmt == "csv":
        if not label_column:
            raise InvalidRequest("a CSV dataset needs 'label_column'")
        return load_csv(path, label_column)
    raise InvalidRequest(f"unknown dataset format '{fmt}'")


def split(ds: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A stratified shuffled split into (rest, held-out) when every class allows it, plain shuffled otherwise."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(ds.y) if len(ds.y) else np.array([])
    stratify = ds.y if counts[counts > 0].min(initial=2) >= 2 else None
    try:
        x_a, x_b, y_a, y_b = train_test_split(ds.x, ds.y, test_size=test_fraction, random_state=seed, stratify=stratify)
    except ValueError:
        x_a, x_b, y_a, y_b = train_test_split(ds.x, ds.y, test_size=test_fraction, random_state=seed)
    make = lambda x, y: Dataset(x, y, ds.kind, ds.feature_names, ds.class_names)  # noqa: E731
    return make(x_a, y_a), make(x_b, y_b)
