"""``tensorq api`` under a real gunicorn: the answers gunicorn gives itself, before the app sees a request (a
request line too long, too many headers, a malformed request line), are the API's JSON error shape too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.migrate import upgrade
from tensorq.localstack import settings_env, wait_http
from tests.conftest import make_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def gunicorn_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tensorq api`` (one gunicorn worker) on SQLite, as a user starts it."""
    folder = tmp_path_factory.mktemp("gunicorn")
    settings = make_settings(folder, f"sqlite:///{folder / 'tensorq.sqlite3'}")
    upgrade(settings.database_url)
    port = _free_port()
    log = (folder / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorq.cli", "api", "--port", str(port), "--workers", "1", "--threads", "4"],
        env={**os.environ, **settings_env(settings), "PYTHONPATH": str(Path.cwd())},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", timeout=60)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is and read the whole answer (gunicorn closes after its own errors)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /v1/jobs/" + b"x" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, "uri_too_long"),
        (
            b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
            431,
            "request_header_fields_too_large",
        ),
        (b"GET /healthz HTTP/1.1 extra\r\nHost: a\r\n\r\n", 400, "bad_request"),
    ],
    ids=["request-line-too-long", "too-many-headers", "malformed-request-line"],
)
def test_gunicorns_own_errors_are_json(gunicorn_api: str, request_bytes: bytes, status: int, code: str) -> None:
    got_status, headers, body = _raw(gunicorn_api, request_bytes)
    assert got_status == status, body
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = httpx.Response(status, content=body).json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details"}
    assert len(error["message"]) <= 200


def test_the_app_still_answers_behind_the_worker(gunicorn_api: str) -> None:
    assert httpx.get(f"{gunicorn_api}/healthz", timeout=10).status_code == 200
    missing = httpx.get(f"{gunicorn_api}/v1/jobs/nope", timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
