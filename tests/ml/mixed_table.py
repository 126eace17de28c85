"""A small table of mixed columns with missing cells, whose label the features decide: for the table tests."""

from __future__ import annotations

import numpy as np

CITIES = ("Paris", "Lyon", "Nice", "Lille")
HEADER = ["age", "income", "city", "plan", "label"]


def mixed_rows(n: int = 240, seed: int = 0) -> list[list[str]]:
    """Rows of ``HEADER``: numeric age and income (some blank), a string city (some blank, some "NA"), a
    numeric-looking plan code meant as a category, and a "yes"/"no" label set by city (or a high income)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        city = CITIES[int(rng.integers(len(CITIES)))]
        income = float(rng.normal(50, 15))
        age = int(rng.integers(18, 80))
        plan = str(int(rng.integers(1, 4)))
        label = "yes" if city in ("Paris", "Nice") or income > 70 else "no"
        cells = [str(age), f"{income:.2f}", city, plan, label]
        if i % 11 == 3:
            cells[1] = ""
        if i % 13 == 5:
            cells[0] = ""
        if i % 17 == 7:
            cells[2] = "" if i % 2 else "NA"
        rows.append(cells)
    return rows


def mixed_csv(n: int = 240, seed: int = 0) -> bytes:
    """``mixed_rows`` as CSV bytes with a header."""
    lines = [",".join(HEADER), *(",".join(row) for row in mixed_rows(n, seed))]
    return ("\n".join(lines) + "\n").encode()


def mixed_parquet(path: str, n: int = 240, seed: int = 0) -> None:
    """``mixed_rows`` as a Parquet file with typed columns: age int64, income float64 (nulls), city string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = mixed_rows(n, seed)
    table = pa.table(
        {
            "age": pa.array([int(r[0]) if r[0] else None for r in rows], pa.int64()),
            "income": pa.array([float(r[1]) if r[1] else None for r in rows], pa.float64()),
            "city": pa.array([r[2] if r[2] not in ("", "NA") else None for r in rows], pa.string()),
            "plan": pa.array([r[3] for r in rows], pa.string()),
            "label": pa.array([r[4] for r in rows], pa.string()),
        }
    )
    pq.write_table(table, path, row_group_size=64)
