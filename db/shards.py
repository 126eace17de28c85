"""Sharded predict and explain: a job split into row ranges, one child each; the parent's result is theirs
joined in row order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection


def joined_shards(conn: Connection, parent_id: str) -> dict[str, Any]:
    """The outputs of a sharded parent's children joined in row order (empty for a parent that is no shard)."""
    return {}
