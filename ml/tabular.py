"""Tables of cells (CSV, Parquet): what counts as a missing cell or a number, each column's inferred type, and
the columns a model cannot use. Shared by the upload check (``api/uploads.py``), the submit checks and the
loaders; it imports numpy only, never TensorFlow.

Column types:

- ``numeric``: every non-missing cell is a finite number;
- ``categorical``: other cells (or a column named in ``categorical_columns``), at most ``MAX_CATEGORIES``
  distinct values and not mostly distinct (see ``free_text``);
- ``text``: free text or identifiers (too many distinct values to be categories): unusable as a feature;
- ``empty``: every cell missing: unusable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tensorq.core.errors import InvalidRequest, PayloadTooLarge

# A cell is missing when, stripped and lower-cased, it is one of these (pandas' most common NA spellings).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
# A number as a cell may spell it (what ``float`` takes, without inf/nan); the encoder layer uses the same.
NUMBER_PATTERN = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
_NUMBER = re.compile(NUMBER_PATTERN)
# The distinct values a categorical column may have; a string column with more is free text.
MAX_CATEGORIES = 1000
# A string column with more than this many distinct values, most of its cells distinct, is an identifier
# or free text rather than categories.
FREE_TEXT_MIN_DISTINCT = 50
FREE_TEXT_DISTINCT_SHARE = 0.5
PREVIEW_ROWS = 10
PREVIEW_CELL_CHARS = 200
# Column names an error echoes at most (the first ones, and how many more).
ECHOED_NAMES = 20
TYPES = ("numeric", "categorical", "text", "empty")


def is_missing(cell: Any) -> bool:
    """Whether ``cell`` (text, a number or None) is a missing value."""
    if cell is None:
        return True
    if isinstance(cell, float):
        return math.isnan(cell)
    return str(cell).strip().lower() in MISSING_TOKENS


def as_cell(value: Any) -> str:
    """A value as a table cell: "" when missing, booleans as ``true``/``false``, numbers as ``repr``."""
    if is_missing(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value).strip()


def number(cell: str) -> float | None:
    """The finite number ``cell`` spells (``NUMBER_PATTERN``), else None."""
    text = cell.strip()
    # What float() takes in ASCII without "_", less inf and nan, is what the pattern matches (tested).
    if "_" in text or not text.isascii():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class ColumnProfile:
    """What a single pass over one column learns: cells, missing cells, non-numbers, distinct values (capped).

    ``add_all`` counts a batch of cells in Arrow's compute kernels (``pyarrow``); ``add`` one cell in Python.
    Both follow ``is_missing`` and ``number``; a test holds them to the same counts."""

    name: str
    rows: int = 0
    missing: int = 0
    non_numeric: int = 0
    distinct: set[int] = field(default_factory=set)  # hashes of the values, at most MAX_CATEGORIES + 1
    longest: int = 0  # the longest cell counted by ``add_all``, in UTF-8 bytes

    def add(self, cell: str) -> None:
        """Count one cell (already stripped; "" when missing)."""
        self.rows += 1
        if not cell or cell.lower() in MISSING_TOKENS:
            self.missing += 1
            return
        if number(cell) is None:
            self.non_numeric += 1
        if len(self.distinct) <= MAX_CATEGORIES:
            self.distinct.add(hash(cell))

    def add_all(self, cells: Sequence[str]) -> None:
        """Count every cell of ``cells`` (a batch, stripped or not), vectorised."""
        import pyarrow as pa

        if cells:
            self._add_text(pa.array(cells, type=pa.string()))

    def add_arrow(self, column: Any) -> None:
        """Count a batch of one Parquet column (an Arrow array of numbers, booleans, strings, or strings as a
        dictionary) without a Python object per cell: a dictionary's values are checked once each and its cells
        counted through their indices; other values as their text (a null as a missing cell)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(column.type):
            self._add_dictionary(column)
        elif len(column):
            self._add_text(pc.fill_null(pc.cast(column, pa.string()), ""))

    def _add_text(self, text: Any) -> None:
        """Count an Arrow string array's cells."""
        import pyarrow.compute as pc

        trimmed = pc.utf8_trim_whitespace(text)
        present = pc.filter(trimmed, pc.invert(_missing(trimmed)))
        self.longest = max(self.longest, int(pc.max(pc.binary_length(text)).as_py() or 0))
        self.rows += len(text)
        self.missing += len(text) - len(present)
        if len(present):
            self.non_numeric += len(present) - int(pc.sum(_numbers(present)).as_py() or 0)
            self._add_distinct(present)

    def _add_dictionary(self, column: Any) -> None:
        """Count a dictionary-encoded Arrow string array's cells through its indices."""
        import pyarrow as pa
        import pyarrow.compute as pc

        values = pc.utf8_trim_whitespace(pc.cast(column.dictionary, pa.string()))
        missing = _missing(values)
        other = pc.invert(pc.or_(missing, _numbers(values)))  # present, not a number
        indices = column.indices
        self.rows += len(column)
        self.missing += column.null_count + int(pc.sum(pc.take(missing, indices)).as_py() or 0)
        self.non_numeric += int(pc.sum(pc.take(other, indices)).as_py() or 0)
        if len(self.distinct) <= MAX_CATEGORIES:
            used = pc.unique(pc.drop_null(indices))
            self._add_distinct(pc.filter(pc.take(values, used), pc.invert(pc.take(missing, used))))

    def _add_distinct(self, present: Any) -> None:
        """Add the hashes of an Arrow array's distinct values, up to ``MAX_CATEGORIES`` + 1 in all."""
        import pyarrow.compute as pc

        if len(self.distinct) > MAX_CATEGORIES:
            return
        for value in pc.unique(present).slice(0, MAX_CATEGORIES + 1).to_pylist():
            self.distinct.add(hash(value))
            if len(self.distinct) > MAX_CATEGORIES:
                break

    def summary(self, categorical: bool = False) -> dict[str, Any]:
        """The column's schema entry: ``name``, ``type``, ``missing``, ``distinct`` (non-numeric columns) and,
        for an unusable column, ``problem`` (why)."""
        present = self.rows - self.missing
        distinct = len(self.distinct)
        entry: dict[str, Any] = {"name": self.name, "missing": self.missing}
        if present == 0:
            return {**entry, "type": "empty", "problem": f"all {self.rows} values are missing"}
        if self.non_numeric == 0 and not categorical:
            return {**entry, "type": "numeric"}
        shown = f"more than {MAX_CATEGORIES}" if distinct > MAX_CATEGORIES else str(distinct)
        entry["distinct"] = min(distinct, MAX_CATEGORIES + 1)
        if free_text(distinct, present):
            problem = (
                f"free text or identifiers: {shown} distinct values in {present} cells "
                f"(a categorical column has at most {MAX_CATEGORIES}, and not mostly distinct ones)"
            )
            return {**entry, "type": "text", "problem": problem}
        return {**entry, "type": "categorical"}


def _missing(trimmed: Any) -> Any:
    """Which cells of an Arrow string array (stripped) are missing values, as a boolean array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(pc.is_in(pc.utf8_lower(trimmed), value_set=pa.array(sorted(MISSING_TOKENS))), True)


def _numbers(present: Any) -> Any:
    """Which cells of an Arrow string array (stripped, none missing) are finite numbers, as ``number`` says."""
    import pyarrow as pa
    import pyarrow.compute as pc

    matched = pc.match_substring_regex(present, f"^(?:{NUMBER_PATTERN})$")
    try:  # a number too large for a double reads as infinity (or fails): not a number, as ``number`` says
        values = pc.cast(pc.if_else(matched, present, "0"), pa.float64())
        return pc.and_(matched, pc.is_finite(values))
    except pa.ArrowInvalid:
        return pa.array([number(cell) is not None for cell in present.to_pylist()], type=pa.bool_())


def add_columns(profiles: Sequence[ColumnProfile], columns: Sequence[Sequence[str]]) -> None:
    """Count a chunk of equally long columns of cells into their profiles, as ``add_all`` on each would, in one
    pass of Arrow's kernels over all of them (a wide table costs a few kernel calls per chunk, not per column)."""
    import itertools

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(columns[0]) if columns else 0
    if not rows:
        return
    text = pa.array(list(itertools.chain.from_iterable(columns)), type=pa.string())
    trimmed = pc.utf8_trim_whitespace(text)
    missing = _missing(trimmed)
    other = pc.invert(pc.or_(missing, _numbers(trimmed)))  # present, not a number

    def per_column(values: Any) -> Any:
        return values.to_numpy(zero_copy_only=False).reshape(len(columns), rows)

    missing_counts = per_column(missing).sum(axis=1)
    other_counts = per_column(other).sum(axis=1)
    longest = per_column(pc.binary_length(text)).max(axis=1)
    owner = pa.array(np.repeat(np.arange(len(columns), dtype=np.int32), rows))
    present = pa.table({"column": owner, "value": trimmed}).filter(pc.invert(missing))
    distinct = present.group_by(["column", "value"]).aggregate([]).sort_by("column")
    starts = np.searchsorted(distinct["column"].to_numpy(), np.arange(len(columns) + 1))
    for j, profile in enumerate(profiles):
        profile.rows += rows
        profile.missing += int(missing_counts[j])
        profile.non_numeric += int(other_counts[j])
        profile.longest = max(profile.longest, int(longest[j]))
        if len(profile.distinct) <= MAX_CATEGORIES:
            shown = distinct["value"].slice(starts[j], min(starts[j + 1] - starts[j], MAX_CATEGORIES + 1))
            profile._add_distinct(shown)


def cell_too_large(column: str, size: int, limit: int) -> PayloadTooLarge:
    """The error of a table whose cell holds more than ``limit`` bytes (413 ``cell_too_large``)."""
    return PayloadTooLarge(
        f"column '{column[:200]}' has a cell of at least {size} bytes; a table's cell may have at most {limit} bytes",
        code="cell_too_large",
        details={"column": column[:200], "cell_bytes": size, "limit": limit},
    )


def free_text(distinct: int, present: int) -> bool:
    """Whether a string column with ``distinct`` values in ``present`` cells is free text, not categories."""
    if distinct > MAX_CATEGORIES:
        return True
    return distinct > FREE_TEXT_MIN_DISTINCT and distinct > FREE_TEXT_DISTINCT_SHARE * present


def infer_schema(
    header: Sequence[str], columns: Sequence[Sequence[str]], categorical: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """The schema entry of each column of a column-major table of cells."""
    declared = set(categorical)
    entries = []
    for name, cells in zip(header, columns, strict=True):
        profile = ColumnProfile(name)
        profile.add_all(cells)
        entries.append(profile.summary(name in declared))
    return entries


def is_mixed(schema: Sequence[dict[str, Any]]) -> bool:
    """Whether a table's feature columns need the encoder (a categorical column or a missing cell)."""
    return any(c["type"] != "numeric" or c.get("missing", 0) for c in schema)


def with_declared(schema: Sequence[dict[str, Any]], categorical: Iterable[str]) -> list[dict[str, Any]]:
    """``schema`` with the ``categorical`` columns typed categorical (numbers as category names)."""
    declared = set(categorical)
    entries = []
    for entry in schema:
        if entry["name"] in declared and entry["type"] == "numeric":
            entry = {**entry, "type": "categorical"}
        entries.append(entry)
    return entries


def echoed(names: Sequence[str], limit: int = ECHOED_NAMES) -> str:
    """The first ``limit`` names, quoted, and how many more there are (an error names no more than that)."""
    shown = ", ".join(f"'{name}'" for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_declared(
    names: Sequence[str], label_column: str | None, categorical: Sequence[str], ignore: Sequence[str]
) -> set[str]:
    """The ignored columns' names; refuses a list longer than the table is wide (``too_many_columns``), a name
    that is not a column (``unknown_columns``, the first ``ECHOED_NAMES`` of them) and a categorical label."""
    for what, declared in (("categorical_columns", categorical), ("ignore_columns", ignore)):
        if len(declared) > len(names):
            raise InvalidRequest(
                f"{what} names {len(declared)} columns; the dataset has {len(names)}",
                code="too_many_columns",
                details={"given": len(declared), "columns": len(names)},
            )
    known = set(names)
    unknown = [name for name in dict.fromkeys([*categorical, *ignore]) if name not in known]
    if unknown:
        raise InvalidRequest(
            f"columns {echoed(unknown)} are not in the dataset",
            code="unknown_columns",
            details={
                "unknown": unknown[:ECHOED_NAMES],
                "unknown_count": len(unknown),
                "columns": list(names[:ECHOED_NAMES]),
                "column_count": len(names),
            },
        )
    if label_column is not None and label_column in set(categorical):
        raise InvalidRequest(f"'{label_column}' is the label column, not a feature", code="unknown_columns")
    return set(ignore)


def _column_problem(entry: dict[str, Any], label_column: str | None, needs_numeric: bool) -> str | None:
    """Why a model cannot use this column (a feature, or the label), or None."""
    if entry["name"] == label_column:
        if entry.get("missing"):
            return f"the label column has {entry['missing']} missing values; drop those rows or fill them"
        return None
    if "problem" in entry:
        return str(entry["problem"])
    if needs_numeric and (entry["type"] != "numeric" or entry.get("missing")):
        return "this architecture takes complete numeric columns (no categories, no missing values)"
    return None


def check_columns(
    schema: Sequence[dict[str, Any]],
    label_column: str | None,
    categorical: Sequence[str] = (),
    ignore: Sequence[str] = (),
    *,
    needs_numeric: bool = False,
) -> list[dict[str, Any]]:
    """The feature columns' schema entries, or an ``unusable_column`` error naming each column a model cannot
    use and why: one with no values, free text, a label with missing values, a declared column not there."""
    ignored = _check_declared([c["name"] for c in schema], label_column, categorical, ignore)
    problems = []
    features = []
    for entry in with_declared(schema, categorical):
        if entry["name"] in ignored:
            continue
        if entry["name"] != label_column:
            features.append(entry)
        why = _column_problem(entry, label_column, needs_numeric)
        if why is not None:
            problems.append({"column": entry["name"], "problem": why})
    if problems:
        listed = "; ".join(f"column '{p['column']}': {p['problem']}" for p in problems[:ECHOED_NAMES])
        more = f"; and {len(problems) - ECHOED_NAMES} more" if len(problems) > ECHOED_NAMES else ""
        hint = "" if needs_numeric else " (leave a feature column out with 'ignore_columns')"
        raise InvalidRequest(
            f"unusable columns: {listed}{more}{hint}",
            code="unusable_column",
            details={"columns": problems[:ECHOED_NAMES], "count": len(problems)},
        )
    if not features:
        raise InvalidRequest("the dataset has no feature columns", code="unusable_column", details={"columns": []})
    return features


def check_predict_columns(
    schema: Sequence[dict[str, Any]], features: Sequence[str], model_columns: Sequence[dict[str, Any]] | None
) -> None:
    """Refuse (``unusable_column``) a table to predict on whose column cannot feed the model: a numeric feature
    column holding other cells, or, for a model without an encoder (``model_columns`` None), a missing cell."""
    by_name = {entry["name"]: entry for entry in schema}
    types = {c["name"]: c["type"] for c in model_columns} if model_columns else {}
    problems = []
    for name in features:
        entry = by_name.get(name)
        if entry is None:
            continue
        numeric = model_columns is None or types.get(name) == "numeric"
        if numeric and entry["type"] not in ("numeric", "empty"):
            problems.append(
                {"column": name, "problem": f"the model reads numbers, the table holds {entry['type']} cells"}
            )
        elif model_columns is None and entry.get("missing"):
            why = f"{entry['missing']} missing values; this model was trained on complete numbers and does not impute"
            problems.append({"column": name, "problem": why})
    if problems:
        listed = "; ".join(f"column '{p['column']}': {p['problem']}" for p in problems)
        raise InvalidRequest(f"unusable columns: {listed}", code="unusable_column", details={"columns": problems})


def encoded_width(features: Sequence[dict[str, Any]]) -> int:
    """How many numbers the encoder makes of a row of these columns (for the model-size check at submit)."""
    width = 0
    for entry in features:
        if entry["type"] == "numeric":
            width += 2 if entry.get("missing") else 1
        else:
            width += int(entry.get("distinct", 1)) + 2  # the values, the missing slot and the unknown slot
    return width


def preview(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """The first ``PREVIEW_ROWS`` rows as cells (each cut to ``PREVIEW_CELL_CHARS``; missing cells as null)."""
    shown = []
    for row in rows:
        if len(shown) >= PREVIEW_ROWS:
            break
        shown.append([None if is_missing(cell) else str(cell)[:PREVIEW_CELL_CHARS] for cell in row])
    return {"columns": list(header), "rows": shown}


def column_reports(signature: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A table model's per-column reports from its signature; None for any other model (a recommender's
    ``columns`` are the names of its user and item columns)."""
    columns = signature.get("columns")
    if columns and all(isinstance(column, dict) for column in columns):
        return list(columns)
    return None


def row_cells(inputs: Any, columns: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Inline ``inputs`` (one row, or a list of rows, of numbers, strings or nulls, in the model's column
    order) as rows of cells; a non-number in a numeric column is an InvalidRequest naming the column."""
    if not isinstance(inputs, list | tuple) or not inputs:
        raise InvalidRequest("inputs must be a row of cells or a non-empty list of rows")
    rows = inputs if isinstance(inputs[0], list | tuple) else [inputs]
    width = len(columns)
    cells = []
    for i, row in enumerate(rows):
        if not isinstance(row, list | tuple) or len(row) != width:
            raise InvalidRequest(
                f"each input row has {width} cells, one per feature column, in order",
                details={"columns": [c["name"] for c in columns], "row": i},
            )
        out = []
        for entry, value in zip(columns, row, strict=True):
            if isinstance(value, dict | list | tuple):
                raise InvalidRequest(f"row {i}: column '{entry['name']}' takes a number, a string or null")
            cell = as_cell(value)
            if entry["type"] == "numeric" and cell and number(cell) is None:
                raise InvalidRequest(
                    f"row {i}: column '{entry['name']}' is numeric, not '{cell[:80]}'",
                    details={"column": entry["name"], "row": i},
                )
            out.append(cell)
        cells.append(out)
    return cells
