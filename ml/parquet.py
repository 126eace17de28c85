"""Parquet tables: the footer and the page headers checked (the row groups' own row counts, columns, their
types, what each page unpacks to) before a page is decoded; then the data read one batch at a time with its
strings kept as Arrow dictionaries, so the rows read, what each string column expands to and its longest cell
are counted, and refused over the limits, before a single cell is expanded. Imports ``pyarrow`` lazily, never
TensorFlow."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.parquet_pages import DICTIONARY_PAGE, Page, pages
from ml.tabular import as_cell, cell_too_large
from tensorq.core.errors import InvalidRequest, PayloadTooLarge

MAGIC = b"PAR1"
BATCH_ROWS = 65_536
BATCH_CELLS = 1_000_000  # cells per batch: a wide table is read in fewer rows at a time
OFFSET_BYTES = 4  # what Arrow holds per string cell beside its bytes (and Parquet's PLAIN encoding too)
MAX_PAGE_BYTES = 64 * 1024 * 1024  # what one page may unpack to (writers make pages of about 1 MiB)


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


def _too_many_rows(rows: int, max_rows: int) -> InvalidRequest:
    """The error of a table over the row limit."""
    return InvalidRequest(f"a dataset may have at most {max_rows} rows", details={"rows": rows})


def _metadata(path: Path) -> Any:
    """The file's footer (``pyarrow.parquet.FileMetaData``); ``invalid_parquet`` when it does not read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidRequest(f"not a readable Parquet file: {exc}", code="invalid_parquet") from None


def _check_rows(metadata: Any, max_rows: int) -> int:
    """The rows the row groups hold (not the file-level count, which a hostile footer may under-state):
    over ``max_rows`` refused, a file-level count that disagrees ``invalid_parquet``, none ``empty_dataset``."""
    rows = sum(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    if max(rows, metadata.num_rows) > max_rows:
        raise _too_many_rows(max(rows, metadata.num_rows), max_rows)
    if rows != metadata.num_rows:
        raise InvalidRequest(
            f"the footer counts {metadata.num_rows} rows, its row groups {rows}",
            code="invalid_parquet",
            details={"rows": metadata.num_rows, "row_group_rows": rows},
        )
    if rows == 0:
        raise InvalidRequest("the Parquet dataset has no rows", code="empty_dataset")
    return int(rows)


def _check_schema(schema: Any, max_columns: int) -> list[str]:
    """The column names; refuses too many, duplicates and unsupported types (``unsupported_column_type``)."""
    names = list(schema.names)
    if not names:
        raise InvalidRequest("the Parquet file has no columns", code="invalid_parquet")
    if len(names) > max_columns:
        raise InvalidRequest(f"a dataset may have at most {max_columns} columns", details={"columns": len(names)})
    if len(set(names)) != len(names):
        raise InvalidRequest("Parquet column names must be unique", code="invalid_parquet")
    unsupported = [{"column": f.name, "type": str(f.type)} for f in schema if _kind(f.type) is None]
    if unsupported:
        listed = ", ".join(f"'{u['column']}' ({u['type']})" for u in unsupported[:20])
        raise InvalidRequest(
            f"unsupported column types: {listed}; a table column holds numbers, booleans or strings",
            code="unsupported_column_type",
            details={"columns": unsupported[:20], "count": len(unsupported)},
        )
    return names


def _check_pages(path: Path, max_bytes: int, max_cell_bytes: int | None) -> None:
    """Refuse, from the page headers alone, a page that unpacks beyond ``MAX_PAGE_BYTES`` or pages that unpack
    beyond ``max_bytes`` in all (413 ``parquet_too_large``, whatever the footer's sizes say), and a dictionary
    whose entries average more than ``max_cell_bytes`` (413 ``cell_too_large``: one of them is that long)."""
    import pyarrow as pa

    try:
        _check_page_sizes(pages(path), max_bytes, max_cell_bytes)
    except (pa.ArrowException, OSError, ValueError) as exc:  # a corrupt column chunk's metadata
        raise InvalidRequest(f"not a readable Parquet file: {exc}", code="invalid_parquet") from None


def _check_page_sizes(headers: Iterator[Page], max_bytes: int, max_cell_bytes: int | None) -> None:
    """The checks of ``_check_pages`` on the page headers."""
    total = 0
    for page in headers:
        column = page.column[:200]
        if page.uncompressed > MAX_PAGE_BYTES:
            raise PayloadTooLarge(
                f"a page of column '{column}' unpacks to {page.uncompressed} bytes; at most {MAX_PAGE_BYTES}",
                code="parquet_too_large",
                details={"column": column, "page_bytes": page.uncompressed, "limit": MAX_PAGE_BYTES},
            )
        total += page.uncompressed
        if total > max_bytes:
            raise PayloadTooLarge(
                f"the Parquet pages unpack to more than {max_bytes} bytes",
                code="parquet_too_large",
                details={"uncompressed_bytes": total, "limit": max_bytes},
            )
        if max_cell_bytes is not None and page.kind == DICTIONARY_PAGE:
            entries = max(page.entries or 0, 1)
            if page.uncompressed > entries * (OFFSET_BYTES + max_cell_bytes):
                raise cell_too_large(page.column, page.uncompressed // entries - OFFSET_BYTES, max_cell_bytes)


def footer(
    path: Path, max_rows: int, max_columns: int, max_bytes: int, max_cell_bytes: int | None = None
) -> dict[str, Any]:
    """Rows, columns and uncompressed size from the footer and the page headers, before a page is decoded;
    refuses more rows (the row groups' own counts) or columns than the limits, more than ``max_bytes``
    uncompressed or a page over ``MAX_PAGE_BYTES`` (413 ``parquet_too_large``), a dictionary with a cell over
    ``max_cell_bytes`` (413 ``cell_too_large``), duplicate names and unsupported types (nested, binary, dates
    and times: ``unsupported_column_type``, naming them)."""
    import pyarrow as pa

    metadata = _metadata(path)
    try:
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, ValueError) as exc:
        raise InvalidRequest(f"not a readable Parquet file: {exc}", code="invalid_parquet") from None
    names = _check_schema(schema, max_columns)
    rows = _check_rows(metadata, max_rows)
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the Parquet data unpacks to {size} bytes; at most {max_bytes}",
            code="parquet_too_large",
            details={"uncompressed_bytes": size, "limit": max_bytes},
        )
    _check_pages(path, max_bytes, max_cell_bytes)
    return {"rows": rows, "columns": names, "uncompressed_bytes": int(size)}


def _expanded(column: Any) -> tuple[int, int]:
    """What an Arrow column (a string dictionary counted per cell, never expanded) holds once its cells are
    expanded, in bytes, and its longest string cell's bytes (0 for other types)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        lengths = pc.take(pc.binary_length(column.dictionary), column.indices)
        total, longest = pc.sum(lengths).as_py() or 0, pc.max(lengths).as_py() or 0
        return int(total) + OFFSET_BYTES * len(column), int(longest)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return int(column.nbytes), int(pc.max(pc.binary_length(column)).as_py() or 0)
    return int(column.nbytes), 0


@dataclass
class Limits:
    """What the batches read so far may hold: rows, the bytes their cells expand to, the longest string cell."""

    max_rows: int
    max_bytes: int
    max_cell_bytes: int | None = None
    rows: int = 0
    bytes: int = 0

    def count(self, batch: Any) -> None:
        """Count one batch; over a limit is an error (400 rows, 413 ``parquet_too_large`` or ``cell_too_large``)."""
        self.rows += batch.num_rows
        if self.rows > self.max_rows:
            raise _too_many_rows(self.rows, self.max_rows)
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            size, longest = _expanded(column)
            if self.max_cell_bytes is not None and longest > self.max_cell_bytes:
                raise cell_too_large(name, longest, self.max_cell_bytes)
            self.bytes += size
        if self.bytes > self.max_bytes:
            raise PayloadTooLarge(
                f"the Parquet data expands to more than {self.max_bytes} bytes (its strings counted once per cell)",
                code="parquet_too_large",
                details={"expanded_bytes": self.bytes, "limit": self.max_bytes},
            )


def arrow_batches(path: Path, limits: Limits, columns: Sequence[str] | None = None) -> Iterator[Any]:
    """The table as Arrow record batches of at most ``BATCH_ROWS`` rows and ``BATCH_CELLS`` cells, string
    columns as dictionaries; each batch counted against ``limits`` before it is yielded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        strings = [f.name for f in schema if _kind(f.type) == "string" and not pa.types.is_null(f.type)]
        handle = pq.ParquetFile(path, read_dictionary=strings)
        width = len(columns) if columns else max(1, len(schema.names))
        rows = max(1, min(BATCH_ROWS, BATCH_CELLS // width))
        for batch in handle.iter_batches(batch_size=rows, columns=list(columns) if columns else None):
            batch.validate(full=True)  # UTF-8 strings, dictionary indices in range
            limits.count(batch)
            yield batch
    except (pa.ArrowException, OSError) as exc:
        raise InvalidRequest(f"not a readable Parquet file: {exc}", code="invalid_parquet") from None


def cells(batch: Any) -> list[list[str]]:
    """A record batch's columns as cells (``as_cell``)."""
    return [[as_cell(v) for v in column.to_pylist()] for column in batch.columns]


def read(path: Path, max_rows: int, max_columns: int, max_bytes: int) -> tuple[list[str], list[list[str]]]:
    """The whole table, footer checked first and each batch counted before its cells are made: the column
    names and each column's cells."""
    info = footer(path, max_rows, max_columns, max_bytes)
    header: list[str] = info["columns"]
    columns: list[list[str]] = [[] for _ in header]
    for batch in arrow_batches(path, Limits(max_rows, max_bytes)):
        for column, part in zip(columns, cells(batch), strict=True):
            column.extend(part)
    return header, columns
