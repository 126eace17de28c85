"""Parquet tables: the footer checked (row count, columns, their types, the uncompressed size) before a byte of
data is read, then the columns read one row group at a time as cells. Imports ``pyarrow`` lazily, never
TensorFlow."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ml.tabular import as_cell
from tensorq.errors import InvalidRequest, PayloadTooLarge

MAGIC = b"PAR1"
BATCH_ROWS = 65_536
BATCH_CELLS = 1_000_000  # cells per batch: a wide table is read in fewer rows at a time


def is_parquet(path: Path) -> bool:
    """Whether the file starts and ends with Parquet's magic bytes."""
    with path.open("rb") as handle:
        head = handle.read(4)
        if head != MAGIC or path.stat().st_size < 12:
            return False
        handle.seek(-4, 2)
        return handle.read(4) == MAGIC


def _kind(arrow_type: Any) -> str | None:
    """ "number", "bool" or "string" for the Arrow types a column may have; None for the others."""
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "number"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_null(arrow_type):
        return "string"  # a column of nulls only: reported as empty
    return None


def footer(path: Path, max_rows: int, max_columns: int, max_bytes: int) -> dict[str, Any]:
    """Rows, columns and uncompressed size from the footer alone; refuses more rows or columns than the limits,
    more than ``max_bytes`` uncompressed (413 ``parquet_too_large``), duplicate names and unsupported types
    (nested, binary, dates and times: ``unsupported_column_type``, naming the columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidRequest(f"not a readable Parquet file: {exc}", code="invalid_parquet") from None
    names = list(schema.names)
    if not names:
        raise InvalidRequest("the Parquet file has no columns", code="invalid_parquet")
    if len(names) > max_columns:
        raise InvalidRequest(f"a dataset may have at most {max_columns} columns", details={"columns": len(names)})
    if len(set(names)) != len(names):
        raise InvalidRequest("Parquet column names must be unique", code="invalid_parquet")
    if metadata.num_rows > max_rows:
        raise InvalidRequest(f"a dataset may have at most {max_rows} rows", details={"rows": metadata.num_rows})
    if metadata.num_rows == 0:
        raise InvalidRequest("the Parquet dataset has no rows", code="empty_dataset")
    unsupported = [{"column": f.name, "type": str(f.type)} for f in schema if _kind(f.type) is None]
    if unsupported:
        listed = ", ".join(f"'{u['column']}' ({u['type']})" for u in unsupported)
        raise InvalidRequest(
            f"unsupported column types: {listed}; a table column holds numbers, booleans or strings",
            code="unsupported_column_type",
            details={"columns": unsupported},
        )
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the Parquet data unpacks to {size} bytes; at most {max_bytes}",
            code="parquet_too_large",
            details={"uncompressed_bytes": size, "limit": max_bytes},
        )
    return {"rows": int(metadata.num_rows), "columns": names, "uncompressed_bytes": int(size)}


def batches(path: Path, columns: Sequence[str] | None = None) -> Iterator[tuple[list[str], list[list[str]]]]:
    """The table at most ``BATCH_ROWS`` rows and ``BATCH_CELLS`` cells at a time: the column names and, per
    column, its cells (``as_cell``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
        width = len(columns) if columns else max(1, len(handle.schema_arrow.names))
        rows = max(1, min(BATCH_ROWS, BATCH_CELLS // width))
        for batch in handle.iter_batches(batch_size=rows, columns=list(columns) if columns else None):
            yield list(batch.schema.names), [[as_cell(v) for v in col.to_pylist()] for col in batch.columns]
    except (pa.ArrowException, OSError) as exc:
        raise InvalidRequest(f"not a readable Parquet file: {exc}", code="invalid_parquet") from None


def read(path: Path, max_rows: int, max_columns: int, max_bytes: int) -> tuple[list[str], list[list[str]]]:
    """The whole table, footer checked first: the column names and each column's cells."""
    info = footer(path, max_rows, max_columns, max_bytes)
    header: list[str] = info["columns"]
    columns: list[list[str]] = [[] for _ in header]
    for _, cells in batches(path):
        for column, part in zip(columns, cells, strict=True):
            column.extend(part)
    return header, columns
