"""Table rows as records: inline inputs given as objects keyed by column name (``[{"age": 30, "city": "nice"}]``,
as MLflow's ``dataframe_records`` and TF Serving's named inputs take them) made rows of cells in the model's
column order, the form every other part reads. A missing key is a missing cell (``null``, as in a row); a key
that is no column is refused. It imports ``ml.tabular``'s names only, never TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

from ml.tabular import ECHOED_NAMES, echoed
from tensorq.core.errors import InvalidRequest

# An echoed key is cut to this many characters (a key is any JSON string, of any length).
KEY_CHARS = 200


def has_records(rows: Any) -> TypeGuard[list[Any]]:
    """Whether ``rows`` (a spec's inline inputs or background rows) holds a record (a JSON object)."""
    return isinstance(rows, list) and any(isinstance(row, dict) for row in rows)


def as_rows(rows: list[Any], columns: Sequence[str], field: str = "inputs") -> list[Any]:
    """``rows`` with every record made a row of cells in ``columns`` order (a missing key as None); ``rows``
    itself when none is a record. Records mixed with rows of another form are an InvalidRequest
    ``mixed_input_forms``; keys that are no column, ``unknown_columns`` naming the first ``ECHOED_NAMES``."""
    if not has_records(rows):
        return rows
    other = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if other is not None:
        raise InvalidRequest(
            f"{field} mixes records (objects keyed by column name) with rows of another form (row {other}); "
            "give every row as a record, or every row as a list of cells in the model's column order",
            code="mixed_input_forms",
            details={"field": field, "row": other},
        )
    known = set(columns)
    unknown = [key[:KEY_CHARS] for key in dict.fromkeys(key for row in rows for key in row if key not in known)]
    if unknown:
        raise InvalidRequest(
            f"{field}: keys {echoed(unknown)} are not feature columns of the model",
            code="unknown_columns",
            details={
                "field": field,
                "unknown": unknown[:ECHOED_NAMES],
                "unknown_count": len(unknown),
                "columns": list(columns[:ECHOED_NAMES]),
                "column_count": len(columns),
            },
        )
    return [[row.get(name) for name in columns] for row in rows]


def not_a_table_model(field: str = "inputs") -> InvalidRequest:
    """The error of records given to a model that was not trained on a table (it has no column names)."""
    return InvalidRequest(
        f"{field} as records (objects keyed by column name) are for a model trained on a table (CSV or Parquet); "
        "this model takes rows in its input shape",
        code="records_need_table_model",
        details={"field": field},
    )
