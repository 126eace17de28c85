"""How `bash .ci/run` spreads the suite over pytest-xdist workers (``--dist loadgroup``): which tests must share a
worker, and which are handed out first so that the long ones never wait behind each other at the end."""

from __future__ import annotations

from collections.abc import Iterable

# Tests that run one after another on one worker, whatever their module: they share the one Docker engine, its
# image cache and the deploy cache folder, and each build alone keeps both cores busy.
SHARED_GROUPS = {"tests/deploy/": "deploy"}

# Node id prefixes, longest running first (measured with --durations=0); the rest follow in file order.
LONG_POLES = (
    "tests/deploy/",
    "tests/test_bench.py",
    "tests/reliability/",
    "tests/console/",
    "tests/e2e/test_speech.py",  # two stacks, two trainings, and builtin:spoken_digits made once (issue 24)
    "tests/e2e/",
    "tests/worker/test_celery_tools.py",
    "tests/worker/",
    "tests/ml/",
    "tests/test_cli.py",
    "tests/test_boundaries.py",
    "tests/api/test_dataset_refs.py",
)

# A fixture of one of these scopes is built once per module (or class): its tests stay together on one worker.
MODULE_SCOPES = frozenset({"module", "package", "class"})


def group_of(nodeid: str, fixture_scopes: Iterable[str]) -> str | None:
    """The xdist group of a test: its shared group, its module when it uses a module-scoped fixture, else none."""
    for prefix, name in SHARED_GROUPS.items():
        if nodeid.startswith(prefix):
            return name
    if MODULE_SCOPES.intersection(fixture_scopes):
        return nodeid.split("::", 1)[0]
    return None


def rank_of(nodeid: str) -> int:
    """Where a test's group is handed out: the index of its long-pole prefix, else after all of them."""
    for rank, prefix in enumerate(LONG_POLES):
        if nodeid.startswith(prefix):
            return rank
    return len(LONG_POLES)
