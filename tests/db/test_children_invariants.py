"""The drills' invariant check over parents and children (``tests/reliability/harness.py``), on each database: it
holds for a graph run through the store, and catches a parent whose totals lie, a finished parent with a live
child, and a child of an ended parent that ended twice."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, update

from db.database import Database
from db.models import Job, JobEvent
from db.records import JobRecord
from tests.db.test_parents import _graph, _run
from tests.reliability.harness import check_children, check_parents


def _ended_graph(db: Database) -> tuple[JobRecord, list[JobRecord]]:
    parent, children = _graph(db, db.keys.ensure_tenant("acme"), 3)
    for child in children:
        _run(db, child.id)
    return parent, children


def _check(db: Database) -> None:
    with db.engine.connect() as conn:
        check_parents(conn)
        check_children(conn)


def test_a_graph_run_through_the_store_keeps_the_invariants(db: Database) -> None:
    parent, children = _graph(db, db.keys.ensure_tenant("acme"), 3)
    _run(db, children[0].id)
    _check(db)  # a running parent: its totals hold, its ended child ended once
    _run(db, children[2].id)
    _run(db, children[1].id, "failed")  # the parent fails at its first failed child
    _check(db)


def test_the_check_catches_totals_that_differ_from_the_children(db: Database) -> None:
    parent, _ = _ended_graph(db)
    with db.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == parent.id).values(children_succeeded=Job.children_succeeded - 1))
    with pytest.raises(AssertionError), db.engine.connect() as conn:
        check_parents(conn)


def test_the_check_catches_a_finished_parent_with_a_live_child(db: Database) -> None:
    _, children = _ended_graph(db)
    with db.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == children[0].id).values(status="running"))
    with pytest.raises(AssertionError, match="live child"), db.engine.connect() as conn:
        check_children(conn)


def test_the_check_catches_a_child_that_ended_twice(db: Database) -> None:
    _, children = _ended_graph(db)
    event = {"job_id": children[1].id, "kind": "state", "from_status": "running", "to_status": "succeeded"}
    with db.engine.begin() as conn:
        conn.execute(insert(JobEvent).values(**event))
    with pytest.raises(AssertionError, match="ended 2 times"), db.engine.connect() as conn:
        check_children(conn)
