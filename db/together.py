"""Write statements whose results nobody reads, sent together: on Postgres as one statement of data-modifying
CTEs (``WITH a AS (INSERT ...), b AS (INSERT ...) INSERT ...``: one round trip instead of one each, issue 26),
on SQLite one after another (it has no data-modifying CTEs, and its statements cost no round trip).

Each statement must be a complete INSERT with its rows as ``.values([...])`` (no executemany parameters). The
parts of one Postgres statement run on one snapshot and cannot see each other's rows, and a foreign key is
checked at the end of the statement: an event may reference a job inserted beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

# Beyond this many rows in all, the statements go one by one (the bound parameters of one statement are bounded).
MAX_ROWS = 256


def run_together(conn: Connection, statements: Sequence[tuple[Any, int] | None]) -> None:
    """Execute each ``(insert statement, its row count)`` (None entries skipped) in ``conn``'s transaction, as one
    statement on Postgres when they hold at most ``MAX_ROWS`` rows in all."""
    present = [(statement, rows) for statement, rows in (s for s in statements if s is not None) if rows]
    if not present:
        return
    if conn.dialect.name != "postgresql" or len(present) == 1 or sum(rows for _, rows in present) > MAX_ROWS:
        for statement, _rows in present:
            conn.execute(statement)
        return
    *before, (last, _rows) = present
    for n, (statement, _rows) in enumerate(before):
        last = last.add_cte(statement.cte(f"together_{n}"))
    conn.execute(last)
