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


def understated_rows(rows: int, claimed: int) -> bytes:
    """A one-row-group file of ``rows`` rows whose file-level ``num_rows`` says ``claimed``: the footer's
    FileMetaData field 3 rewritten by hand (the row group keeps its own count), and the footer length fixed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    table = pa.table({"a": pa.array(np.zeros(rows, dtype=np.int8)), "b": pa.array(np.ones(rows, dtype=np.int8))})
    pq.write_table(table, out, row_group_size=rows, compression="zstd")
    data = out.getvalue()
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - length : -8]
    at = footer.index(_i64_field_3(rows))  # FileMetaData's num_rows comes before its row groups' own
    patched = footer[:at] + _i64_field_3(claimed) + footer[at + len(_i64_field_3(rows)) :]
    return data[: -8 - length] + patched + len(patched).to_bytes(4, "little") + b"PAR1"
