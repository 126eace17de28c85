"""Parquet read within limits: what strings expand to counted from their dictionaries before a cell is made, the
row groups' own row counts trusted over the file's, rows counted while reading, and Arrow profiles (dictionary or
plain) counting as the cell-by-cell ones do."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from api.uploads import profile_upload
from ml import parquet, tabular
from tensorq.core.errors import InvalidRequest, PayloadTooLarge
from tests.ml.hostile_parquet import dictionary_bomb, understated_rows, understated_sizes


def test_a_dictionary_bomb_is_refused_by_its_longest_cell_before_a_cell_is_expanded(tmp_path: Path) -> None:
    path = tmp_path / "bomb.parquet"
    path.write_bytes(dictionary_bomb(4096, 50_000))
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(PayloadTooLarge) as caught:
        profile_upload(path)
    assert caught.value.code == "cell_too_large"
    assert caught.value.details == {"column": "s", "cell_bytes": 4096, "limit": 1024}


def test_what_strings_expand_to_is_counted_per_cell_not_from_the_footer_sizes(tmp_path: Path) -> None:
    path = tmp_path / "bomb.parquet"
    path.write_bytes(dictionary_bomb(1000, 50_000))  # 50 MB once expanded; the footer says a few KiB
    assert parquet.footer(path, 10**6, 10, 10**6)["uncompressed_bytes"] < 10**6
    with pytest.raises(PayloadTooLarge) as caught:
        profile_upload(path, max_array_bytes=10**7)
    assert caught.value.code == "parquet_too_large"
    assert caught.value.details["limit"] == 10**7
    fmt, info, _ = profile_upload(path, max_array_bytes=10**8)  # under the limit it is accepted
    assert (fmt, info["rows"]) == ("parquet", 50_000)


def test_a_footer_that_understates_its_rows_is_refused_by_the_row_groups_counts(tmp_path: Path) -> None:
    path = tmp_path / "lie.parquet"
    path.write_bytes(understated_rows(3_000_000, 1000))
    with pytest.raises(InvalidRequest, match="at most 1000000 rows") as caught:
        parquet.footer(path, 1_000_000, 10, 10**9)
    assert caught.value.details == {"rows": 3_000_000}
    path.write_bytes(understated_rows(3000, 1000))  # under the cap, but the footer disagrees with itself
    with pytest.raises(InvalidRequest) as caught:
        parquet.footer(path, 1_000_000, 10, 10**9)
    assert caught.value.code == "invalid_parquet"


def test_rows_are_counted_while_reading_and_the_read_stops_at_the_cap(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": list(range(3000))}), tmp_path / "t.parquet", row_group_size=500)
    read = []
    with pytest.raises(InvalidRequest, match="at most 1000 rows"):
        for batch in parquet.arrow_batches(tmp_path / "t.parquet", parquet.Limits(1000, 10**9)):
            read.append(batch.num_rows)
    assert sum(read) <= 1000


def test_arrow_profiles_count_as_cell_by_cell_ones(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = [" 1", "2.5 ", "", "NA", "n/a", None, "x", "1e999", "1_0", "Paris", "paris", "Paris ", "null", "-3"]
    floats = [1.0, math.nan, None, math.inf, -0.5, 1e20, 3.0, 2.0, 1.0, 0.0, -math.inf, 5.5, 7.0, 8.0]
    table = pa.table(
        {
            "s": strings,
            "d": pa.array(strings).dictionary_encode(),
            "f": floats,
            "i": pa.array([i if i % 4 else None for i in range(14)], pa.int64()),
            "b": [True, False, None] * 4 + [True, True],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=5)
    arrow = {name: tabular.ColumnProfile(name) for name in table.column_names}
    by_cell = {name: tabular.ColumnProfile(name) for name in table.column_names}
    for batch in parquet.arrow_batches(tmp_path / "t.parquet", parquet.Limits(100, 10**6)):
        assert pa.types.is_dictionary(batch.column(0).type)  # strings are read as dictionaries
        for name, column, cells in zip(batch.schema.names, batch.columns, parquet.cells(batch), strict=True):
            arrow[name].add_arrow(column)
            for cell in cells:
                by_cell[name].add(cell)
    for name in table.column_names:
        one, batched = by_cell[name], arrow[name]
        assert (one.rows, one.missing, one.non_numeric, len(one.distinct)) == (
            batched.rows,
            batched.missing,
            batched.non_numeric,
            len(batched.distinct),
        ), name
    assert (arrow["d"].rows, arrow["d"].missing, arrow["d"].non_numeric) == (14, 5, 6)


def test_page_headers_are_trusted_over_the_footers_sizes(tmp_path: Path) -> None:
    path = tmp_path / "lie.parquet"
    payload, true = understated_sizes(70_000_000, 1000)  # 2 KiB on disk, one 70 MB page; the footer says 1000
    path.write_bytes(payload)
    with pytest.raises(PayloadTooLarge) as caught:
        parquet.footer(path, 10, 10, 10**9)
    assert caught.value.code == "parquet_too_large"
    assert caught.value.details["column"] == "s"
    assert caught.value.details["page_bytes"] > 70_000_000 > parquet.MAX_PAGE_BYTES == caught.value.details["limit"]
    assert true > 70_000_000
    payload, true = understated_sizes(10_000_000, 1000)  # pages under the page limit, over the data limit
    path.write_bytes(payload)
    with pytest.raises(PayloadTooLarge) as caught:
        parquet.footer(path, 10, 10, 5_000_000)  # the pages' own sizes against the limit, not the footer's
    assert caught.value.code == "parquet_too_large"
    assert caught.value.details["limit"] == 5_000_000
    assert caught.value.details["uncompressed_bytes"] > 10_000_000


def test_page_headers_read_as_the_footer_counts_them_and_a_broken_one_is_invalid(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from ml.parquet_pages import DICTIONARY_PAGE, pages
    from tests.ml.mixed_table import mixed_parquet

    path = tmp_path / "t.parquet"
    mixed_parquet(str(path))
    metadata = pq.read_metadata(path)
    read = list(pages(path))
    chunks = [metadata.row_group(g).column(c) for g in range(metadata.num_row_groups) for c in range(5)]
    assert sum(page.kind == DICTIONARY_PAGE for page in read) == sum(chunk.has_dictionary_page for chunk in chunks)
    assert sum(page.compressed for page in read) < sum(chunk.total_compressed_size for chunk in chunks)
    broken = bytearray(path.read_bytes())
    broken[4:40] = b"\xff" * 36  # the first page header
    path.write_bytes(bytes(broken))
    with pytest.raises(InvalidRequest) as caught:
        parquet.footer(path, 10**6, 10, 10**9)
    assert caught.value.code == "invalid_parquet"


def test_corrupt_bytes_anywhere_are_a_coded_error_never_a_crash(tmp_path: Path) -> None:
    import random

    from tensorq.core.errors import TensorQError
    from tests.ml.mixed_table import mixed_parquet

    mixed_parquet(str(tmp_path / "t.parquet"))
    good = (tmp_path / "t.parquet").read_bytes()
    footer = len(good) - 8 - int.from_bytes(good[-8:-4], "little")
    rng = random.Random(7)
    for round_ in range(400):
        data = bytearray(good)
        for _ in range(rng.randint(1, 6)):  # half the rounds in the footer, half anywhere
            data[rng.randrange(footer if round_ % 2 else 4, len(data) - 8)] = rng.randrange(256)
        (tmp_path / "f.parquet").write_bytes(bytes(data))
        try:
            profile_upload(tmp_path / "f.parquet")
        except TensorQError:
            pass
