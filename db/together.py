"""Write statements whose results nobody reads, sent together: on Postgres as one statement of data-modifying
CTEs (``WITH a AS (INSERT ...), b AS (INSERT ...) INSERT ...``: one round trip instead of one each, issue 26),
on SQLite one after another (it has no data-modifying CTEs, and its statements cost no round trip).

Each part is an INSERT (without its values) and its rows: folded, the rows become the statement's VALUES list;
otherwise the statement runs once over them (executemany, which SQLAlchemy's statement cache serves: a VALUES
list of many rows is a new statement each time, twice the cost of an executemany on SQLite). The parts of one
Postgres statement run on one snapshot and cannot see each other's rows, and a foreign key is checked at the end
of the statement: an event may reference a job inserted beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

# Beyond this many rows in all, the statements go one by one (the bound parameters of one statement are bounded).
MAX_ROWS = 256


# An INSERT statement (without values) and the rows it inserts.
Rows = tuple[Any, list[dict[str, Any]]]


def run_together(conn: Connection, parts: Sequence[Rows | None]) -> None:
    """Insert each part's rows (None and empty parts skipped) in ``conn``'s transaction: as one statement on
    Postgres when there are several parts with at most ``MAX_ROWS`` rows in all, else each part on its own."""
    present = [(statement, rows) for statement, rows in (p for p in parts if p is not None) if rows]
    if not present:
        return
    if conn.dialect.name != "postgresql" or len(present) == 1 or sum(len(rows) for _, rows in present) > MAX_ROWS:
        for statement, rows in present:
            conn.execute(statement, rows)
        return
    *before, (last, rows) = present
    folded = last.values(rows)
    for n, (statement, part_rows) in enumerate(before):
        folded = folded.add_cte(statement.values(part_rows).cte(f"together_{n}"))
    conn.execute(folded)
