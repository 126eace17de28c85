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

from tensorq.errors import InvalidRequest

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
        import pyarrow.compute as pc

        if not cells:
            return
        text = pc.utf8_trim_whitespace(pa.array(cells, type=pa.string()))
        missing = pc.is_in(pc.utf8_lower(text), value_set=pa.array(sorted(MISSING_TOKENS)))
        present = pc.filter(text, pc.invert(missing))
        self.rows += len(cells)
        self.missing += len(cells) - len(present)
        if len(present) == 0:
            return
        numbers = pc.match_substring_regex(present, f"^(?:{NUMBER_PATTERN})$")
        try:  # a number too large for a double reads as infinity (or fails): not a number, as ``number`` says
            values = pc.cast(pc.if_else(numbers, present, "0"), pa.float64())
            numeric = pc.and_(numbers, pc.is_finite(values))
            self.non_numeric += len(present) - pc.sum(numeric).as_py()
        except pa.ArrowInvalid:
            self.non_numeric += sum(1 for cell in present.to_pylist() if number(cell) is None)
        if len(self.distinct) <= MAX_CATEGORIES:
            for value in pc.unique(present).to_pylist():
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
    names = [c["name"] for c in schema]
    unknown = [c for c in [*categorical, *ignore] if c not in names]
    if unknown:
        raise InvalidRequest(
            f"columns {', '.join(unknown)} are not in the dataset",
            code="unknown_columns",
            details={"unknown": unknown, "columns": names},
        )
    if label_column is not None and label_column in categorical:
        raise InvalidRequest(f"'{label_column}' is the label column, not a feature", code="unknown_columns")
    problems = []
    features = []
    for entry in with_declared(schema, categorical):
        if entry["name"] in ignore:
            continue
        if entry["name"] == label_column:
            if entry.get("missing"):
                why = f"the label column has {entry['missing']} missing values; drop those rows or fill them"
                problems.append({"column": entry["name"], "problem": why})
            continue
        features.append(entry)
        if "problem" in entry:
            problems.append({"column": entry["name"], "problem": entry["problem"]})
        elif needs_numeric and (entry["type"] != "numeric" or entry.get("missing")):
            why = "this architecture takes complete numeric columns (no categories, no missing values)"
            problems.append({"column": entry["name"], "problem": why})
    if problems:
        listed = "; ".join(f"column '{p['column']}': {p['problem']}" for p in problems)
        hint = "" if needs_numeric else " (leave a feature column out with 'ignore_columns')"
        raise InvalidRequest(f"unusable columns: {listed}{hint}", code="unusable_column", details={"columns": problems})
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
