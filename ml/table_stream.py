"""A table (Parquet or CSV) read in bounded chunks instead of whole: Parquet row groups through
``pyarrow.parquet.ParquetFile.iter_batches``, CSV blocks through ``pyarrow.csv.open_csv`` (every column read as
text, as the in-memory reader does). Numpy and pyarrow only, never TensorFlow.

A streamed table's held-out rows are chosen by a hash of each row's position in the table and the seed
(``held_out``), so the same rows are held out on every pass and every attempt, without a list of them."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ml import parquet, tabular
from tensorq.core.errors import InvalidRequest

CHUNK_ROWS = 32_768  # rows read at once
CHUNK_CELLS = 1_048_576  # cells read at once (fewer rows for a wide table)
CSV_BLOCK_BYTES = 4 * 1024 * 1024
ARROW_FAULTS = (pa.ArrowException, OSError, EOFError, ValueError)


@dataclass(frozen=True)
class TableStream:
    """A table to stream rather than load: its local file, format and how its columns are read."""

    path: Path
    fmt: str
    label_column: str | None
    categorical: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()


def decoded_bytes(path: Path, fmt: str) -> int:
    """What the table takes once decoded: the Parquet row groups' uncompressed size, or the CSV file's size."""
    if fmt != "parquet":
        return path.stat().st_size
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except ARROW_FAULTS as exc:
        raise InvalidRequest(f"not a readable Parquet file: {exc}", code="invalid_parquet") from None
    return int(sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)))


def header(path: Path, fmt: str) -> list[str]:
    """The table's column names."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except ARROW_FAULTS as exc:
            raise InvalidRequest(f"not a readable Parquet file: {exc}", code="invalid_parquet") from None
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            names = [name.strip() for name in next(csv.reader(handle), None) or []]
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"not a readable UTF-8 CSV: {exc}") from None
    if not names:
        raise InvalidRequest("the CSV needs a header row")
    return names


def chunks(path: Path, fmt: str, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The table's rows in order as Arrow record batches of bounded size (``columns`` only, when given); a CSV's
    cells as text."""
    names = header(path, fmt)
    width = len(columns) if columns else max(1, len(names))
    rows = max(1, min(CHUNK_ROWS, CHUNK_CELLS // width))
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            # pre_buffer would keep every column chunk read so far (the whole file by the end), not one row group
            handle = pq.ParquetFile(path, pre_buffer=False)
            yield from handle.iter_batches(batch_size=rows, columns=list(columns) if columns else None)
            return
        yield from _csv_chunks(path, names, columns, rows)
    except ARROW_FAULTS as exc:
        kind = "Parquet file" if fmt == "parquet" else "UTF-8 CSV"
        raise InvalidRequest(
            f"not a readable {kind}: {exc}", code="invalid_parquet" if fmt == "parquet" else None
        ) from None


def _csv_chunks(path: Path, names: list[str], columns: Sequence[str] | None, rows: int) -> Iterator[pa.RecordBatch]:
    """A CSV's rows as record batches of text cells, at most ``rows`` at a time."""
    from pyarrow import csv as pacsv

    raw = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=CSV_BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            include_columns=list(columns) if columns else None,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    for batch in raw:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def cells(column: Any) -> list[str]:
    """One Arrow column of a chunk as cells (``ml.tabular.as_cell``: stripped text, "" when missing)."""
    return [tabular.as_cell(v) for v in column.to_pylist()]


def chunk_cells(batch: pa.RecordBatch) -> list[list[str]]:
    """A chunk's columns as cells, the same as the in-memory reader makes them."""
    return parquet.cells(batch)


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser over unsigned 64-bit integers (a well-spread hash of a row's position)."""
    z = values.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def held_out(start: int, rows: int, seed: int, test: float, validation: float) -> np.ndarray:
    """Which part each of the rows ``start .. start + rows`` falls in: 0 train, 1 validation, 2 test. A row's
    part depends only on its position and the seed: a test fraction ``test`` of the rows, then ``validation``
    of the rest, as the in-memory split takes them."""
    positions = np.arange(start, start + rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        keyed = positions + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
    share = (_mix(keyed) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    parts = np.zeros(rows, dtype=np.int8)
    parts[share < test] = 2
    parts[(share >= test) & (share < test + validation * (1.0 - test))] = 1
    return parts


@dataclass
class NumericMoments:
    """Count, mean and sum of squared deviations of a column's numbers (merged chunk by chunk, Chan et al.)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        """Merge the finite float64 ``values`` of one chunk."""
        n = len(values)
        if not n:
            return
        mean = float(values.mean())
        m2 = float(((values - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.count * n / total
        self.mean += delta * n / total
        self.count = total

    @property
    def variance(self) -> float:
        """The population variance (what ``numpy.std`` and Keras's ``Normalization.adapt`` use)."""
        return self.m2 / self.count if self.count else 0.0


@dataclass
class ColumnStats:
    """One feature column's figures over a table's training rows: its numbers' moments, how many cells were
    counted, and each distinct cell's count (up to ``MAX_CATEGORIES`` + 1 distinct cells)."""

    name: str
    rows: int = 0
    moments: NumericMoments = field(default_factory=NumericMoments)
    counts: dict[str, int] = field(default_factory=dict)

    def add_numbers(self, values: np.ndarray, rows: int) -> None:
        """Count ``rows`` cells, of which ``values`` (float64) were finite numbers."""
        self.rows += rows
        self.moments.add(values)

    def add_values(self, values: Any) -> None:
        """Count a chunk's present (non-empty) cells as an Arrow string array, per distinct value."""
        import pyarrow.compute as pc

        if len(self.counts) > tabular.MAX_CATEGORIES or not len(values):
            return
        for row in pc.value_counts(values).to_pylist():
            key = str(row["values"])
            self.counts[key] = self.counts.get(key, 0) + int(row["counts"])

    def add_counted(self, keys: Sequence[str], counts: Sequence[int]) -> None:
        """Add distinct cells with their counts: known ones always, new ones while at most ``MAX_CATEGORIES``."""
        for key, count in zip(keys, counts, strict=True):
            if key in self.counts:
                self.counts[key] += int(count)
            elif len(self.counts) <= tabular.MAX_CATEGORIES:
                self.counts[key] = int(count)


@dataclass
class TableScan:
    """What one pass over a streamed table learns: every column's profile (its type, as the in-memory loader
    infers it from every row), the feature columns' figures over the training rows, the labels and how many
    rows fall in each part (train, validation, test)."""

    names: list[str]
    profiles: list[tabular.ColumnProfile]
    stats: dict[str, ColumnStats]
    labels: dict[str, int]
    parts: list[int]
    schema: list[dict[str, Any]] = field(default_factory=list)  # every column's entry
    features: list[dict[str, Any]] = field(default_factory=list)  # the feature columns' entries
    class_names: list[str] | None = None  # string labels' sorted names (None: the labels are class ids)

    @property
    def mixed(self) -> bool:
        """Whether the features need the table encoder (a categorical column or a missing cell)."""
        return tabular.is_mixed(self.features)


MAX_LABELS = 10_000  # distinct labels a streamed table may have


def _is_number_type(kind: Any) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind))


def text(column: Any) -> Any:
    """An Arrow column as trimmed text, a null as ""; numbers and booleans as Arrow writes them."""
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return pc.utf8_trim_whitespace(pc.fill_null(pc.cast(column, pa.string()), ""))


def _missing(trimmed: Any) -> Any:
    import pyarrow.compute as pc

    tokens = pa.array(sorted(tabular.MISSING_TOKENS))
    return pc.fill_null(pc.is_in(pc.utf8_lower(trimmed), value_set=tokens), True)


def numbers_of(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """A column's cells as float64 and which of them are finite numbers (``ml.tabular.number``'s reading)."""
    import pyarrow.compute as pc

    if _is_number_type(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        return values, np.isfinite(values)
    trimmed = text(column)
    matched = pc.and_(
        pc.invert(_missing(trimmed)), pc.match_substring_regex(trimmed, f"^(?:{tabular.NUMBER_PATTERN})$")
    )
    values = pc.cast(pc.if_else(matched, trimmed, "0"), pa.float64()).to_numpy(zero_copy_only=False)
    present = matched.to_numpy(zero_copy_only=False) & np.isfinite(values)
    return values, present


def category_cells(column: Any) -> Any:
    """A categorical column's cells as an Arrow string array the way ``ml.tabular.as_cell`` spells them
    (missing cells as "")."""
    import pyarrow.compute as pc

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_dictionary(column.type):
        trimmed = text(column)
        return pc.if_else(_missing(trimmed), "", trimmed)
    return pa.array(cells(column), type=pa.string())


def scan(stream: TableStream, seed: int, test: float, validation: float) -> TableScan:
    """One pass over the table: profiles of every column, figures of the training rows, the labels."""
    import pyarrow.compute as pc

    names = header(stream.path, stream.fmt)
    if stream.label_column is not None and stream.label_column not in names:
        raise InvalidRequest(f"label column '{stream.label_column}' not in the table", details={"columns": names[:20]})
    declared = set(stream.categorical)
    profiles = [tabular.ColumnProfile(name) for name in names]
    stats = {name: ColumnStats(name) for name in names if name != stream.label_column}
    labels: dict[str, int] = {}
    parts = [0, 0, 0]
    offset = 0
    for batch in chunks(stream.path, stream.fmt):
        rows = batch.num_rows
        part = held_out(offset, rows, seed, test, validation)
        offset += rows
        for k in range(3):
            parts[k] += int((part == k).sum())
        train = pa.array(part == 0)
        for profile, name, column in zip(profiles, names, batch.columns, strict=True):
            _profile(profile, column)
            if name == stream.label_column:
                _add_labels(labels, column)
                continue
            trained = column.filter(train)
            values, present = numbers_of(trained)
            stats[name].add_numbers(values[present], len(trained))
            if name in declared or not _is_number_type(column.type):
                kept = category_cells(trained)
                kept = pc.filter(kept, pc.not_equal(kept, ""))
                counted = pc.value_counts(kept)
                stats[name].add_counted(counted.field("values").to_pylist(), counted.field("counts").to_pylist())
    result = TableScan(names, profiles, stats, labels, parts)
    result.schema = [p.summary(p.name in declared) for p in profiles]
    result.features = tabular.check_columns(result.schema, stream.label_column, stream.categorical, stream.ignore)
    if stream.label_column is not None:
        result.class_names = _class_names(labels, stream.label_column)
    return result


def _profile(profile: tabular.ColumnProfile, column: Any) -> None:
    """Count a chunk of one column into its profile: a column of numbers in numpy (a null or NaN is a missing
    cell, an infinity a cell that is not a number, as ``ml.tabular.as_cell`` and ``number`` read them), any
    other through ``ColumnProfile.add_arrow``."""
    if not _is_number_type(column.type) or pa.types.is_dictionary(column.type):
        profile.add_arrow(column)
        return
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    missing = int(np.isnan(values).sum())  # nulls come out as NaN
    profile.rows += len(values)
    profile.missing += missing
    profile.non_numeric += len(values) - missing - int(np.isfinite(values).sum())


def _add_labels(labels: dict[str, int], column: Any) -> None:
    """Count a chunk's labels per distinct value (spelled as ``ml.tabular.as_cell`` spells them)."""
    import pyarrow.compute as pc

    counted = pc.value_counts(column.dictionary_decode() if pa.types.is_dictionary(column.type) else column)
    keys = counted.field("values")
    spelled = cells(keys) if _is_number_type(keys.type) or pa.types.is_boolean(keys.type) else category_cells(keys)
    for key, count in zip(
        spelled if isinstance(spelled, list) else spelled.to_pylist(), counted.field("counts").to_pylist(), strict=True
    ):
        labels[key] = labels.get(key, 0) + int(count)
    if len(labels) > MAX_LABELS:
        raise InvalidRequest(f"the label column has more than {MAX_LABELS} distinct values", code="unusable_column")


def _class_id(label: str) -> int | None:
    try:
        value = float(label)
    except ValueError:
        return None
    return int(value) if value.is_integer() and abs(value) < 2**31 else None


def _class_names(labels: dict[str, int], label_column: str) -> list[str] | None:
    """None when every label is a whole number (its own class id), else the sorted label names; an empty
    label is refused, as the in-memory loader does."""
    if "" in labels:
        raise InvalidRequest(f"label column '{label_column}' has empty values")
    if all(_class_id(v) is not None for v in labels):
        return None
    return sorted(labels)


def class_counts(found: TableScan) -> np.ndarray:
    """Rows per class id over the whole table."""
    if found.class_names is None:
        ids = {int(_class_id(k) or 0): v for k, v in found.labels.items()}
    else:
        ids = {found.class_names.index(k): v for k, v in found.labels.items()}
    counts = np.zeros(max(ids, default=-1) + 1, dtype=np.int64)
    for k, v in ids.items():
        counts[k] += v
    return counts


def label_ids(column: Any, class_names: list[str] | None) -> np.ndarray:
    """A chunk's label column as int64 class ids."""
    import pyarrow.compute as pc

    if class_names is None and _is_number_type(column.type):
        return column.to_numpy(zero_copy_only=False).astype(np.int64)
    cells_ = category_cells(column)
    if class_names is None:
        return pc.cast(cells_, pa.float64()).to_numpy(zero_copy_only=False).astype(np.int64)
    return (
        pc.index_in(cells_, value_set=pa.array(class_names, type=pa.string()))
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )


def feature_matrix(batch: pa.RecordBatch, features: list[dict[str, Any]], mixed: bool) -> np.ndarray:
    """A chunk's feature columns as the model takes them: float32 (N, F) for complete numbers, else cells
    (an object array of str, "" for missing) for the table encoder."""
    names = batch.schema.names
    rows = batch.num_rows
    if not mixed:
        x = np.empty((rows, len(features)), dtype=np.float32)
        for j, entry in enumerate(features):
            x[:, j] = numbers_of(batch.column(names.index(entry["name"])))[0]
        return x
    x = np.empty((rows, len(features)), dtype=object)
    for j, entry in enumerate(features):
        column = batch.column(names.index(entry["name"]))
        x[:, j] = (text(column) if entry["type"] == "numeric" else category_cells(column)).to_numpy(
            zero_copy_only=False
        )
    return x
