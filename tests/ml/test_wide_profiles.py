"""Profiles of a chunk of many columns at once (``tabular.add_columns``) count as each column's own does, and a
wide table's upload check costs a few kernel calls per chunk, not per column."""

from __future__ import annotations

import random
import time

from ml import tabular


def test_columns_profiled_together_count_as_each_alone() -> None:
    rng = random.Random(3)
    pool = [" 1", "2.5 ", "", "NA", "n/a", " None", "x", "1e999", "1_0", "Paris", "paris", "-3", "é", "  "]
    width, chunks = 40, 3
    together = [tabular.ColumnProfile(f"c{j}") for j in range(width)]
    alone = [tabular.ColumnProfile(f"c{j}") for j in range(width)]
    for _ in range(chunks):
        columns = [[rng.choice(pool[: 3 + j % 12]) for _ in range(25)] for j in range(width)]
        columns[0] = [str(rng.random()) for _ in range(25)]  # many distinct values
        tabular.add_columns(together, columns)
        for profile, column in zip(alone, columns, strict=True):
            profile.add_all(column)
    for one, other in zip(alone, together, strict=True):
        assert (one.rows, one.missing, one.non_numeric, one.longest) == (
            other.rows,
            other.missing,
            other.non_numeric,
            other.longest,
        ), one.name
        assert one.distinct == other.distinct, one.name


def test_distinct_values_stay_capped_per_column() -> None:
    profiles = [tabular.ColumnProfile("ids"), tabular.ColumnProfile("few")]
    tabular.add_columns(profiles, [[f"id{i}" for i in range(5000)], ["a", "b"] * 2500])
    assert len(profiles[0].distinct) == tabular.MAX_CATEGORIES + 1
    assert len(profiles[1].distinct) == 2


def test_a_wide_chunk_is_profiled_in_one_pass() -> None:
    width = 10_000
    profiles = [tabular.ColumnProfile(f"c{j}") for j in range(width)]
    columns = [[str(j % 3), "x", ""] for j in range(width)]
    started = time.perf_counter()
    tabular.add_columns(profiles, columns)
    assert time.perf_counter() - started < 5.0  # was about 10 s: a dozen kernel calls per column
    assert (profiles[7].rows, profiles[7].missing, profiles[7].non_numeric) == (3, 1, 1)
