"""``tensorq jobs watch`` on a parent: its state line carries its children's counts by status (only the statuses
it has), so a plain watch prints a new line each time they move, and the end names the command that lists them."""

from __future__ import annotations

from tensorq.cli_watch import children_line, state_line
from tensorq.client import Job

COUNTS = {"total": 30, "queued": 2, "running": 2, "succeeded": 24, "failed": 1, "cancelled": 1}


def test_a_parent_s_state_line_shows_its_children_by_status() -> None:
    tune = Job(id="t1", type="tune", status="running", children=COUNTS)
    assert state_line(tune) == "tune t1: running - children 24/30 succeeded, 2 running, 2 queued, 1 failed, 1 cancelled"


def test_only_the_statuses_a_parent_has_are_named_and_a_plain_job_has_none() -> None:
    assert children_line({"total": 5, "succeeded": 5, "queued": 0, "running": 0}) == "5/5 succeeded"
    moved = state_line(Job(id="t1", type="tune", status="running", children={**COUNTS, "succeeded": 25, "queued": 1}))
    assert moved != state_line(Job(id="t1", type="tune", status="running", children=COUNTS))  # a new line
    assert "children" not in state_line(Job(id="p1", type="predict", status="running"))
