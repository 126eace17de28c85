"""The real compose stack for tests/deploy/: built and started once per module, always taken down."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.deploy.stack import EngineUnavailable, Stack, ensure_engine

REQUIRE = os.environ.get("TENSORQ_TEST_REQUIRE_SERVICES") == "1" or os.environ.get("TENSORQ_TEST_REQUIRE_DOCKER") == "1"


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine with compose v2 (deploy/engine.sh); skips, saying why, only where none can run."""
    if os.environ.get("TENSORQ_TEST_SKIP_DOCKER") == "1" and not REQUIRE:
        pytest.skip("TENSORQ_TEST_SKIP_DOCKER=1")
    try:
        ensure_engine()
    except EngineUnavailable as exc:
        if REQUIRE:
            pytest.fail(f"a Docker engine is required here: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def stack(docker_engine: None, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A stack of this checkout (overrides from the module's STACK_SETTINGS), removed with its volumes after."""
    deployment = Stack.create(getattr(request.module, "STACK_SETTINGS", {}))
    try:
        yield deployment
    finally:
        deployment.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=300)
