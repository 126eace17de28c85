"""README's curl examples, run verbatim by bash against a real API and worker (SQLite, a Redis of their own)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.database import Database
from db.migrate import upgrade
from tensorq.localstack import ApiThread, WorkerProcess, settings_env, wait_http
from tests.conftest import make_settings
from tests.services import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- The block below is run verbatim by tests/e2e/test_readme.py"


def readme_block() -> str:
    """The bash block that follows the marker in README.md."""
    text = README.read_text()
    found = re.search(re.escape(MARKER) + r".*?\n```bash\n(.*?)```", text, re.S)
    assert found, "README.md lost its runnable curl block"
    return found.group(1)


@pytest.fixture
def api_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A running API and worker; the environment a user's shell would have next to them."""
    redis_server = RedisServer(tmp_path / "redis").start()
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'tensorq.sqlite3'}", broker_url=redis_server.url)
    upgrade(settings.database_url)
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_http(f"{api.url}/readyz")
        bin_dir = str(Path(sys.executable).parent)
        yield {
            **os.environ,
            **settings_env(settings),
            "TENSORQ_URL": api.url,
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        }
    finally:
        worker.stop()
        api.stop()
        Database(settings).dispose()
        redis_server.stop()


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="README's examples need curl and jq")
def test_the_readme_curl_examples_run_verbatim(api_env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", readme_block()],
        env=api_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=800,
    )
    assert done.returncode == 0, done.stderr
    outcomes = re.findall(r"^[0-9a-f-]{36} (\w+)$", done.stdout, re.M)
    assert outcomes == ["succeeded", "succeeded", "succeeded"], done.stdout
    assert re.search(r"^\[0\]$", done.stdout, re.M), "the README's digit is a 0"
    assert (tmp_path / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
