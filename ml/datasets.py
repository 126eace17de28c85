"""Datasets: scikit-learn built-ins, uploaded ``.npz``, ``.csv``, ``.parquet`` and ``.jsonl``, and MNIST-format
``.npz`` files.

A table (CSV or Parquet) of complete numeric feature columns loads as float32 ``x``; one with a categorical
column or a missing cell loads as its cells (an object array of strings, "" for missing) with ``columns``, the
feature columns' schema entries (``ml.tabular``), for the model's own encoder layer (``ml.encoding``)."""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ml import parquet, tabular
from ml.catalog import AUDIO_BUILTINS, BUILTIN_DATASETS, TEXT_MAX_LINE_BYTES, TEXT_MAX_ROWS
from ml.validation import text_row
from tensorq.core.errors import InvalidRequest, OutOfRange

BUILTINS = BUILTIN_DATASETS
# What a broken or hostile .npz raises from np.load: bad zip, pickled objects, truncated arrays.
_NPZ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile)
TABLE_FORMATS = ("csv", "parquet")
MAX_TABLE_ROWS = 1_000_000
MAX_TABLE_COLUMNS = 10_000
MAX_TABLE_BYTES = 4 * 1024**3  # what a Parquet file may unpack to in the worker (uploads are held to less)


@dataclass
class Dataset:
    """Inputs ``x`` and targets ``y``; ``kind`` is "tabular", "image", "text", "audio" or "interactions".

    tabular and image: ``x`` float32 (N, features) or (N, H, W, C), ``y`` int64 class ids (zeros when
    unlabelled); text: ``x`` an object array of N strings, ``y`` class ids; interactions: ``x`` an
    object array (N, 2) of user and item ids as strings, ``y`` float32 ratings; audio: ``x`` float32
    (N, samples) clips at ``sample_rate`` Hz, ``y`` class ids.
    """

    x: np.ndarray
    y: np.ndarray
    kind: str
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    columns: list[dict] | None = None  # the feature columns' schema entries when ``x`` holds a table's cells
    sample_rate: int | None = None  # audio clips' rate


def _labels(y: np.ndarray) -> np.ndarray:
    """``y`` as int64 class ids; whole-number floats are accepted, anything else is an InvalidRequest."""
    if y.ndim != 1:
        raise InvalidRequest(f"y must be one label per row (1-D), not shaped {list(y.shape)}")
    if y.dtype.kind in "iub":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)
    raise InvalidRequest("y must hold integer class ids")


def _from_arrays(x: np.ndarray, y: np.ndarray) -> Dataset:
    """A dataset from raw arrays: 2-D ``x`` is tabular, 3-D (N, H, W) or 4-D (N, H, W, C) are images."""
    if len(x) != len(y):
        raise InvalidRequest("x and y have different lengths", details={"x": len(x), "y": len(y)})
    if x.dtype.kind not in "iubf":
        raise InvalidRequest(f"x must be numeric, not of dtype {x.dtype}")
    labels = _labels(y)
    if x.ndim not in (2, 3, 4):
        raise InvalidRequest(f"x must have 2 (tabular), 3 or 4 (images) dimensions, not {x.ndim}")
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32 becomes inf, refused below
        features = x.astype(np.float32, copy=False)
    if x.dtype.kind == "f" and not np.all(np.isfinite(features)):  # integers always fit float32's range
        raise InvalidRequest("x contains NaN or infinite values")
    if x.ndim == 2:
        return Dataset(features, labels, "tabular")
    if x.ndim == 3:
        features = features[..., None]
    return Dataset(features, labels, "image")


def load_builtin(name: str) -> Dataset:
    """One of scikit-learn's bundled datasets: digits (8x8 images), breast_cancer, iris, wine."""
    from sklearn import datasets as sk

    loaders = {
        "digits": sk.load_digits,
        "breast_cancer": sk.load_breast_cancer,
        "iris": sk.load_iris,
        "wine": sk.load_wine,
    }
    if name in AUDIO_BUILTINS:
        raise InvalidRequest(f"builtin:{name} holds audio clips: train audio_cnn on it", code="data_does_not_fit")
    if name not in loaders:
        raise InvalidRequest(
            f"unknown builtin dataset '{name}'; known: {', '.join(BUILTINS)}", details={"known": list(BUILTINS)}
        )
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


def load_audio_zip(path: str | Path, rate: int, length: int) -> Dataset:
    """A zip of WAV clips (``ml.audio``) at ``rate`` Hz in windows of ``length`` samples, labelled by folder or
    ``labels.csv``; class ids index the sorted labels (integer labels are their own ids)."""
    from ml import audio

    x, labels = audio.load_zip(path, rate, length)
    y, class_names = _class_ids(labels, "the clips' labels")
    return Dataset(x, y, "audio", class_names=class_names, sample_rate=rate)


def load_spoken_digits(cache_dir: str | Path, rate: int, length: int) -> Dataset:
    """``builtin:spoken_digits`` (``ml.spoken_digits``) at ``rate`` Hz in windows of ``length`` samples."""
    from ml import spoken_digits

    x, y, _ = spoken_digits.clips(Path(cache_dir))
    x = spoken_digits.at_rate(x, rate, length)
    return Dataset(x, y, "audio", class_names=list(spoken_digits.WORDS), sample_rate=rate)


def load_npz(path: str | Path) -> Dataset:
    """An ``.npz`` with arrays ``x`` and ``y``, loaded without pickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not {"x", "y"} <= set(archive.files):
                raise InvalidRequest("an .npz dataset needs arrays 'x' and 'y'", details={"arrays": archive.files})
            x, y = archive["x"], archive["y"]
    except _NPZ_ERRORS as exc:
        raise InvalidRequest(f"not a readable .npz of numeric arrays (pickles are refused): {exc}") from None
    return _from_arrays(x, y)


def load_mnist_npz(path: str | Path) -> Dataset:
    """A Keras MNIST-format ``.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``), train and test joined."""
    names = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = sorted(set(names) - set(archive.files))
            if missing:
                raise InvalidRequest("not an MNIST-format .npz", details={"missing": missing})
            x_train, y_train, x_test, y_test = (archive[name] for name in names)
    except _NPZ_ERRORS as exc:
        raise InvalidRequest(f"not a readable .npz of numeric arrays (pickles are refused): {exc}") from None
    if x_train.shape[1:] != x_test.shape[1:]:
        raise InvalidRequest("x_train and x_test images differ in shape")
    return _from_arrays(np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test]))


def _read_csv(path: str | Path, max_rows: int, max_columns: int) -> tuple[list[str], list[list[str]]]:
    """The header and the non-empty rows of a CSV file, within the bounds."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, None) or []]
            if not header:
                raise InvalidRequest("the CSV needs a header row")
            if len(header) > max_columns:
                raise InvalidRequest(f"at most {max_columns} columns", details={"columns": len(header)})
            rows = []
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(rows) >= max_rows:
                    raise InvalidRequest(f"at most {max_rows} rows")
                if len(row) != len(header):
                    raise InvalidRequest(
                        f"line {reader.line_num} has {len(row)} fields, the header has {len(header)}",
                        details={"line": reader.line_num},
                    )
                rows.append(row)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"not a readable UTF-8 CSV: {exc}") from None
    return header, rows


def read_table(
    path: str | Path, fmt: str, max_rows: int = MAX_TABLE_ROWS, max_columns: int = MAX_TABLE_COLUMNS
) -> tuple[list[str], list[list[str]]]:
    """A CSV's or Parquet file's column names and each column's cells (stripped text, "" when missing)."""
    if fmt == "parquet":
        return parquet.read(Path(path), max_rows, max_columns, MAX_TABLE_BYTES)
    header, rows = _read_csv(path, max_rows, max_columns)
    columns = [[tabular.as_cell(cell) for cell in column] for column in zip(*rows, strict=True)] if rows else []
    return header, columns or [[] for _ in header]


def _features(header: list[str], columns: list[list[str]], schema: list[dict]) -> tuple[np.ndarray, list[dict] | None]:
    """The feature columns as float32 when all are complete numbers, else as cells with their schema entries."""
    at = {name: j for j, name in enumerate(header)}
    rows = len(columns[0]) if columns else 0
    if not tabular.is_mixed(schema):
        x = np.empty((rows, len(schema)), dtype=np.float32)
        for j, entry in enumerate(schema):
            x[:, j] = [float(v) for v in columns[at[entry["name"]]]]
        return x, None
    x = np.empty((rows, len(schema)), dtype=object)
    for j, entry in enumerate(schema):
        x[:, j] = columns[at[entry["name"]]]
    return x, list(schema)


def load_table(
    path: str | Path,
    fmt: str,
    label_column: str | None,
    categorical: list[str] | tuple[str, ...] = (),
    ignore: list[str] | tuple[str, ...] = (),
    *,
    numeric_only: bool = False,
    max_rows: int = MAX_TABLE_ROWS,
    max_columns: int = MAX_TABLE_COLUMNS,
) -> Dataset:
    """A CSV or Parquet table: the feature columns (every column but the label and ``ignore``) and a label
    column of integers or strings. Types are inferred (``ml.tabular``), ``categorical`` columns are categories
    whatever their cells; an unusable column is an ``unusable_column`` error naming it. With ``numeric_only``
    (autoencoders) every feature must be a complete number column.

    Without ``label_column`` every column is a feature and the labels are zeros (for autoencoders).
    """
    header, columns = read_table(path, fmt, max_rows, max_columns)
    if label_column is not None and label_column not in header:
        where = "the CSV" if fmt == "csv" else "the table"
        raise InvalidRequest(f"label column '{label_column}' not in {where}", details={"columns": header})
    schema = tabular.infer_schema(header, columns, categorical)
    features = tabular.check_columns(schema, label_column, categorical, ignore, needs_numeric=numeric_only)
    x, described = _features(header, columns, features)
    names = [entry["name"] for entry in features]
    if label_column is None:
        return Dataset(x, np.zeros(len(x), dtype=np.int64), "tabular", feature_names=names, columns=described)
    y, class_names = _class_ids(columns[header.index(label_column)], f"label column '{label_column}'")
    return Dataset(x, y, "tabular", feature_names=names, class_names=class_names, columns=described)


def load_csv(
    path: str | Path, label_column: str | None, max_rows: int = 1_000_000, max_columns: int = 10_000
) -> Dataset:
    """A CSV with a header (see ``load_table``)."""
    return load_table(path, "csv", label_column, max_rows=max_rows, max_columns=max_columns)


def load_columns(
    path: str | Path,
    fmt: str,
    feature_names: list[str],
    label_column: str | None = None,
    class_names: list[str] | None = None,
    columns: list[dict] | None = None,
    *,
    require_label: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x, y)``: the columns a model was trained on, by name and in its order, from any table that has them
    (other columns are ignored); with ``label_column`` also the labels (else ``y`` is None), as ids into
    ``class_names`` when the model has names. ``columns`` (the model's column schema) means the model encodes
    cells itself: ``x`` is then cells, numeric columns checked to hold numbers; without it ``x`` is float32 and
    a missing cell is refused. Without ``require_label`` a missing label column just means no labels."""
    header, cells = read_table(path, fmt)
    return columns_of(header, cells, feature_names, label_column, class_names, columns, require_label=require_label)


def columns_of(
    header: list[str],
    cells: list[list[str]],
    feature_names: list[str],
    label_column: str | None = None,
    class_names: list[str] | None = None,
    columns: list[dict] | None = None,
    *,
    require_label: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``load_columns`` on a table (or a chunk of one) already read as its header and each column's cells."""
    missing = [name for name in feature_names if name not in header]
    if missing:
        raise InvalidRequest(
            f"the table lacks the model's feature columns {', '.join(missing)}",
            code="missing_columns",
            details={"missing": missing, "features": feature_names},
        )
    if label_column is not None and label_column not in header:
        if require_label:
            raise InvalidRequest(f"label column '{label_column}' not in the table", details={"columns": header})
        label_column = None
    rows = len(cells[0]) if cells else 0
    x = np.empty((rows, len(feature_names)), dtype=object if columns else np.float32)
    for j_out, name in enumerate(feature_names):
        column = cells[header.index(name)]
        numeric = columns is None or columns[j_out]["type"] == "numeric"
        if numeric:
            _check_numbers(name, column, allow_missing=columns is not None)
        x[:, j_out] = column if columns else [float(v) for v in column]
    if label_column is None:
        return x, None
    return x, _scored_labels(cells[header.index(label_column)], label_column, class_names)


def _check_numbers(name: str, cells: list[str], allow_missing: bool) -> None:
    """Refuse a cell of a numeric column that is not a finite number (or, without ``allow_missing``, missing)."""
    for i, cell in enumerate(cells):
        if not cell:
            if allow_missing:
                continue
            count = sum(1 for c in cells if not c)
            raise InvalidRequest(
                f"column '{name}' has {count} missing values; this model was trained on complete numeric data "
                "and does not impute (train on data with missing cells for a model that does)",
                code="unusable_column",
                details={"column": name, "missing": count},
            )
        if tabular.number(cell) is None:
            raise InvalidRequest(
                f"column '{name}' is numeric for the model, but row {i + 1} holds '{cell[:80]}'",
                code="unusable_column",
                details={"column": name, "row": i + 1},
            )


def _scored_labels(labels: list[str], label_column: str, class_names: list[str] | None) -> np.ndarray:
    """Labels to score predictions against: ids into ``class_names``, else numbers."""
    if any(not v for v in labels):
        raise InvalidRequest(
            f"label column '{label_column}' has missing values",
            code="unusable_column",
            details={"column": label_column, "missing": sum(1 for v in labels if not v)},
        )
    if class_names:
        index = {str(name): i for i, name in enumerate(class_names)}
        unknown = sorted({v for v in labels if v not in index})
        if unknown:
            raise InvalidRequest(
                f"label column '{label_column}' has values the model does not know",
                code="unknown_labels",
                details={"unknown": unknown[:20], "classes": [str(c) for c in class_names]},
            )
        return np.asarray([index[v] for v in labels], dtype=np.int64)
    try:
        return np.asarray([float(v) for v in labels], dtype=np.float64)
    except ValueError:
        raise InvalidRequest(
            f"label column '{label_column}' is not numeric", details={"column": label_column}
        ) from None


def load_csv_columns(
    path: str | Path,
    feature_names: list[str],
    label_column: str | None = None,
    class_names: list[str] | None = None,
    max_rows: int = 1_000_000,
    max_columns: int = 10_000,
    *,
    require_label: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``load_columns`` of a CSV for a model that takes float32 rows."""
    return load_columns(path, "csv", feature_names, label_column, class_names, require_label=require_label)


def _class_ids(labels: list[str], where: str) -> tuple[np.ndarray, list[str] | None]:
    """Integer labels as they are (``1.0`` too: Parquet keeps integer classes in float columns), or string
    labels as ids into their sorted names."""
    if any(not v for v in labels):
        raise InvalidRequest(f"{where} has empty values")
    ids = [_class_id(v) for v in labels]
    if all(i is not None for i in ids):
        return np.asarray(ids, dtype=np.int64), None
    class_names = sorted(set(labels))
    index = {name: i for i, name in enumerate(class_names)}
    return np.asarray([index[v] for v in labels], dtype=np.int64), class_names


def _class_id(label: str) -> int | None:
    """A label that is a whole number (``3``, ``3.0``) as that number; None for any other label."""
    try:
        value = float(label)
    except ValueError:
        return None
    return int(value) if value.is_integer() and abs(value) < 2**31 else None


def load_jsonl(
    path: str | Path, require_labels: bool = True, max_rows: int = TEXT_MAX_ROWS, max_line: int = TEXT_MAX_LINE_BYTES
) -> Dataset:
    """A text dataset: one JSON object per line with a string ``text`` and a ``label`` (integer or string)."""
    texts: list[str] = []
    labels: list[str] = []
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                row = text_row(raw, number, max_line, require_labels)
                if row is None:
                    continue
                if len(texts) >= max_rows:
                    raise InvalidRequest(f"at most {max_rows} lines")
                text, label = row
                texts.append(text)
                labels.append(str(label).strip() if label is not None else "0")
    except OSError as exc:
        raise InvalidRequest(f"not a readable .jsonl file: {exc}") from None
    if not texts:
        raise InvalidRequest("the text dataset has no rows")
    y, class_names = _class_ids(labels, "'label'")
    return Dataset(np.asarray(texts, dtype=object), y, "text", class_names=class_names)


def load_interactions(
    path: str | Path,
    user_column: str = "user",
    item_column: str = "item",
    rating_column: str = "rating",
    max_rows: int = 10_000_000,
) -> Dataset:
    """A CSV of (user, item, rating) rows: ids as strings, ratings as finite float32."""
    header, rows = _read_csv(path, max_rows, 10_000)
    columns = (user_column, item_column, rating_column)
    missing = [c for c in columns if c not in header]
    if missing:
        raise InvalidRequest(f"columns {missing} are not in the CSV", details={"columns": header, "missing": missing})
    user_at, item_at, rating_at = (header.index(c) for c in columns)
    pairs = np.asarray([[row[user_at].strip(), row[item_at].strip()] for row in rows], dtype=object).reshape(-1, 2)
    if any(not u or not i for u, i in pairs):
        raise InvalidRequest("user and item ids must not be empty")
    try:
        ratings = np.asarray([float(row[rating_at]) for row in rows], dtype=np.float64)
    except ValueError:
        raise InvalidRequest(f"column '{rating_column}' is not numeric", details={"column": rating_column}) from None
    if len(ratings) == 0 or not np.all(np.isfinite(ratings)):
        raise InvalidRequest(f"column '{rating_column}' must hold finite numbers, at least one")
    return Dataset(pairs, ratings.astype(np.float32), "interactions", feature_names=[user_column, item_column])


def load_file(
    path: str | Path,
    fmt: str,
    label_column: str | None = None,
    *,
    require_labels: bool = True,
    categorical: list[str] | tuple[str, ...] = (),
    ignore: list[str] | tuple[str, ...] = (),
    numeric_only: bool = False,
) -> Dataset:
    """Load an uploaded dataset by its recorded format ("npz", "csv", "parquet" or "jsonl"); tables per
    ``load_table``."""
    if fmt == "npz":
        return load_npz(path)
    if fmt in TABLE_FORMATS:
        if not label_column and require_labels:
            raise InvalidRequest(f"a {fmt.upper() if fmt == 'csv' else 'Parquet'} dataset needs 'label_column'")
        return load_table(path, fmt, label_column or None, categorical, ignore, numeric_only=numeric_only)
    if fmt == "jsonl":
        return load_jsonl(path, require_labels=require_labels)
    raise InvalidRequest(f"unknown dataset format '{fmt}'; known: npz, csv, parquet, jsonl")


def split(ds: Dataset, test_fraction: float, seed: int, stratified: bool = True) -> tuple[Dataset, Dataset]:
    """A shuffled split into (rest, held-out), stratified (when asked) if every class has at least two rows."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise OutOfRange("the held-out fraction must be between 0 and 1", details={"test_fraction": test_fraction})
    stratify = None
    if stratified and ds.y.dtype.kind in "iu" and len(ds.y) and ds.y.min() >= 0:
        counts = np.bincount(ds.y)
        present = counts[counts > 0]
        stratify = ds.y if len(present) and present.min() >= 2 else None
    try:
        try:
            parts = train_test_split(ds.x, ds.y, test_size=test_fraction, random_state=seed, stratify=stratify)
        except ValueError:  # too few rows for one of each class in both parts: fall back to a plain shuffle
            parts = train_test_split(ds.x, ds.y, test_size=test_fraction, random_state=seed)
    except ValueError:
        raise InvalidRequest(
            f"{len(ds.y)} rows are too few to hold out a fraction of {test_fraction}", details={"rows": len(ds.y)}
        ) from None
    x_a, x_b, y_a, y_b = parts
    return replace(ds, x=x_a, y=y_a), replace(ds, x=x_b, y=y_b)
