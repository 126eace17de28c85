"""deploy/offline-images.sh's stand-ins behave like the official images where compose relies on them."""

from __future__ import annotations

import secrets
import subprocess
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tests.deploy.stack import free_port, offline_environment

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def images(docker_engine: None) -> dict[str, str]:
    return offline_environment()


def _run(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout.strip()


def test_postgres_stand_in_honours_user_password_and_database(images: dict[str, str]) -> None:
    port, password = free_port(), secrets.token_urlsafe(12)
    container = _run(
        "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:5432", "-e", "POSTGRES_USER=alice",
        "-e", f"POSTGRES_PASSWORD={password}", "-e", "POSTGRES_DB=shop", images["TENSORQ_POSTGRES_IMAGE"],
    )  # fmt: skip
    try:
        url = f"postgresql+psycopg://alice:{password}@127.0.0.1:{port}/shop"
        deadline = time.monotonic() + 90
        while True:
            try:
                engine = create_engine(url, connect_args={"connect_timeout": 3})
                with engine.connect() as conn:
                    assert conn.execute(text("select current_user, current_database()")).one() == ("alice", "shop")
                engine.dispose()
                break
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        wrong = create_engine(url.replace(password, "wrong"), connect_args={"connect_timeout": 3})
        with pytest.raises(OperationalError, match="password authentication failed"):
            wrong.connect()
        wrong.dispose()
        assert _run("exec", container, "pg_isready", "-U", "alice", "-d", "shop").endswith("accepting connections")
    finally:
        subprocess.run(["docker", "stop", "-t", "5", container], capture_output=True, timeout=60)


def test_redis_stand_in_requires_its_password(images: dict[str, str]) -> None:
    password = secrets.token_urlsafe(12)
    container = _run("run", "-d", "--rm", images["TENSORQ_REDIS_IMAGE"], "redis-server", "--requirepass", password)
    try:
        time.sleep(1)
        denied = subprocess.run(["docker", "exec", container, "redis-cli", "ping"], capture_output=True, text=True)
        assert "NOAUTH" in denied.stdout + denied.stderr
        ok = _run("exec", container, "redis-cli", "-a", password, "--no-auth-warning", "ping")
        assert ok == "PONG"
    finally:
        subprocess.run(["docker", "stop", "-t", "5", container], capture_output=True, timeout=60)


def test_python_stand_in_is_python_3_11_with_venv(images: dict[str, str]) -> None:
    out = _run(
        "run", "--rm", images["TENSORQ_PYTHON_IMAGE"], "sh", "-c", "python3 -m venv /tmp/v && /tmp/v/bin/python -V"
    )
    assert out.startswith("Python 3.11")
