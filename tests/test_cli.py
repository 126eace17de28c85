"""The ``tensorq`` command as a user runs it: migrate, keys, and the demo round trip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from db.database import Database
from tensorq.core.settings import Settings


def _tensorq(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tensorq.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_migrate_then_keys_create_list_revoke(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    env = {"TENSORQ_DATABASE_URL": url, "TENSORQ_ARTIFACT_DIR": str(tmp_path)}
    assert _tensorq(["migrate"], env).returncode == 0
    created = _tensorq(["keys", "create", "--tenant", "acme"], env)
    assert created.returncode == 0
    key = created.stdout.strip()
    assert key.startswith("tq_")
    principal = Database(Settings(database_url=url)).keys.authenticate(key)
    listed = _tensorq(["keys", "list"], env).stdout
    assert principal.key_id in listed
    assert "acme" in listed
    assert key.split("_", 2)[2] not in listed
    assert _tensorq(["keys", "revoke", principal.key_id], env).returncode == 0
    assert "revoked" in _tensorq(["keys", "list"], env).stdout
    assert _tensorq(["keys", "revoke", "nope"], env).returncode != 0


def test_worker_refuses_an_unknown_queue_or_gpu(tmp_path: Path) -> None:
    env = {"TENSORQ_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"}
    assert _tensorq(["worker", "--queues", "bogus"], env).returncode == 2
    assert _tensorq(["worker", "--gpu", "first"], env).returncode == 2


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_demo_runs_the_round_trip_without_redis(tmp_path: Path) -> None:
    """README's first command, on the embedded default with kombu's filesystem transport."""
    result = _tensorq(["demo", "--home", str(tmp_path), "--epochs", "4", "--broker", "filesystem://"], {}, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "round trip done" in result.stdout
    assert "completeness gap" in result.stdout
    heatmaps = list(tmp_path.glob("*-heatmap_0.png"))
    assert heatmaps
    assert heatmaps[0].read_bytes()[:4] == b"\x89PNG"
