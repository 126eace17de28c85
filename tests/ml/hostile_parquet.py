"""Hostile Parquet files, built in the test: a dictionary bomb and a footer that under-states its rows."""

from __future__ import annotations

import io

import numpy as np


def dictionary_bomb(cell_bytes: int, rows: int) -> bytes:
    """One string of ``cell_bytes`` bytes, dictionary-encoded over ``rows`` rows (a few KiB on disk)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["x" * cell_bytes]))
    out = io.BytesIO()
    pq.write_table(pa.table({"s": column}), out, use_dictionary=True, compression="zstd")
    return out.getvalue()


def _varint(value: int) -> bytes:
    """Thrift compact protocol's unsigned varint."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _i64_field_3(value: int) -> bytes:
    """A compact-protocol i64 field 3 following field 2 (header 0x16) with its zigzag varint value."""
    return b"\x16" + _varint(value << 1)


def _rewrite_footer(data: bytes, old: int, new: int, first_only: bool) -> bytes:
    """``data`` with the footer's i64 field(s) holding ``old`` (each one field after another, header 0x16)
    rewritten to hold ``new``, and the footer length fixed; the pages before the footer are left as they are."""
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - length : -8]
    assert _i64_field_3(old) in footer
    patched = footer.replace(_i64_field_3(old), _i64_field_3(new), 1 if first_only else -1)
    return data[: -8 - length] + patched + len(patched).to_bytes(4, "little") + b"PAR1"


def understated_rows(rows: int, claimed: int) -> bytes:
    """A one-row-group file of ``rows`` rows whose file-level ``num_rows`` says ``claimed``: the footer's
    FileMetaData field 3 rewritten by hand (the row group keeps its own count)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    table = pa.table({"a": pa.array(np.zeros(rows, dtype=np.int8)), "b": pa.array(np.ones(rows, dtype=np.int8))})
    pq.write_table(table, out, row_group_size=rows, compression="zstd")
    return _rewrite_footer(out.getvalue(), rows, claimed, first_only=True)  # FileMetaData's comes first


def understated_sizes(cell_bytes: int, claimed: int) -> tuple[bytes, int]:
    """One row of one ``cell_bytes`` string, compressed to a few KiB, whose footer says its data unpacks to
    ``claimed`` bytes (the row group's ``total_byte_size`` and the column's ``total_uncompressed_size``, which
    a one-column file makes equal); and the true size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"s": ["x" * cell_bytes]}), out, compression="zstd", use_dictionary=False)
    true = pq.read_metadata(io.BytesIO(out.getvalue())).row_group(0).total_byte_size
    return _rewrite_footer(out.getvalue(), true, claimed, first_only=False), true
