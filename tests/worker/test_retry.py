"""The worker's retries through a database outage: how many tries, how long they wait, what they retry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tensorq.core.errors import InvalidRequest, Unavailable
from worker import retry


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The delays asked for, without waiting; the process's default restored afterwards."""
    delays: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", delays.append)
    yield delays
    retry.configure(8)


def _down() -> None:
    raise Unavailable("the database is down")


def test_the_default_budget_rides_out_31_5_seconds(no_sleep: list[float]) -> None:
    with pytest.raises(Unavailable):
        retry.with_backoff(_down)
    assert no_sleep == [0.5, 1, 2, 4, 8, 8, 8]
    assert sum(no_sleep) == retry.budget_s(8) == 31.5


def test_the_setting_sets_the_tries_of_calls_that_name_none(no_sleep: list[float]) -> None:
    retry.configure(3)
    with pytest.raises(Unavailable):
        retry.with_backoff(_down)
    assert no_sleep == [0.5, 1]
    assert retry.budget_s(3) == 1.5
    no_sleep.clear()
    with pytest.raises(Unavailable):
        retry.with_backoff(_down, attempts=2)
    assert no_sleep == [0.5]


def test_only_unavailability_is_retried(no_sleep: list[float]) -> None:
    calls: list[int] = []

    def bad_request() -> None:
        calls.append(1)
        raise InvalidRequest("the job's own error")

    with pytest.raises(InvalidRequest):
        retry.with_backoff(bad_request)
    assert calls == [1]
    assert no_sleep == []
