"""The plan that spreads the suite over pytest-xdist workers (tests/parallel.py and the hook in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.parallel import LONG_POLES, group_of, rank_of


def test_every_deploy_test_shares_one_group_whatever_its_fixtures() -> None:
    assert group_of("tests/deploy/test_k8s_manifests.py::test_x", ["function"]) == "deploy"
    assert group_of("tests/deploy/test_compose_stack.py::test_y", ["module", "session"]) == "deploy"


def test_a_module_scoped_fixture_keeps_its_module_on_one_worker() -> None:
    assert group_of("tests/e2e/test_round_trip.py::test_x[a]", ["function", "module"]) == "tests/e2e/test_round_trip.py"
    assert group_of("tests/ml/test_vae.py::Test::test_y", ["class"]) == "tests/ml/test_vae.py"


def test_tests_with_function_and_session_fixtures_only_are_spread_one_by_one() -> None:
    assert group_of("tests/api/test_jobs_api.py::test_x[postgres]", ["function", "session"]) is None


def test_long_poles_are_handed_out_first_in_their_order_then_the_rest() -> None:
    ids = ["tests/api/test_a.py::t", "tests/reliability/test_drills.py::t", "tests/deploy/test_b.py::t"]
    assert sorted(ids, key=rank_of) == [ids[2], ids[1], ids[0]]
    assert rank_of("tests/test_compose.py::t") == len(LONG_POLES)


@pytest.fixture(scope="module")
def _built_once() -> int:
    return 1


def test_the_collection_hook_marks_a_module_scoped_test_with_its_group(
    _built_once: int, request: pytest.FixtureRequest
) -> None:
    groups = [mark.args[0] for mark in request.node.iter_markers("xdist_group")]
    assert groups == ["tests/test_parallel.py"]
    if getattr(request.config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        assert request.node.nodeid.endswith("@tests/test_parallel.py"), "the scheduler reads the group in the id"


def test_the_collection_hook_leaves_a_test_without_module_fixtures_ungrouped(request: pytest.FixtureRequest) -> None:
    assert list(request.node.iter_markers("xdist_group")) == []
