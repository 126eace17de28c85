"""A webhook POST's deadline bounds the whole exchange, on real sockets: a receiver that drips its answer's
head or body, or stalls the TLS handshake, holds an attempt no longer than the deadline; TLS checks the URL's
host name, not the address connected to."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore
import pytest

from tests.webhook_receivers import TestReceiver
from worker import webhook_http

HEADERS = [(b"Host", b"hooks.example"), (b"Content-Type", b"application/json")]


def _url(port: int, scheme: bytes = b"http") -> httpcore.URL:
    return httpcore.URL(scheme=scheme, host=b"127.0.0.1", port=port, target=b"/hook")


def _port(receiver: TestReceiver) -> int:
    return int(receiver.url.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.mark.parametrize("mode", ["drip_head", "drip_body", "hang"])
def test_a_slow_receiver_is_cut_at_the_deadline(mode: str) -> None:
    receiver = TestReceiver(mode, drip_s=0.2)
    pool = webhook_http.new_pool()
    try:
        started = time.monotonic()
        if mode == "drip_body":  # the status came in time: it counts, the rest of the body is not waited for
            assert webhook_http.post(pool, _url(_port(receiver)), HEADERS, b"{}", 1.5) == 200
        else:
            with pytest.raises(httpcore.TimeoutException):
                webhook_http.post(pool, _url(_port(receiver)), HEADERS, b"{}", 1.5)
        assert time.monotonic() - started < 2.5  # about 1.5 s, whatever the receiver still has to send
    finally:
        pool.close()
        receiver.stop()


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS receiver with a certificate for ``hooks.example``, and a client context that trusts it."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hooks.example",
         "-addext", "subjectAltName=DNS:hooks.example", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], ssl.create_default_context(cafile=str(cert))
    server.shutdown()
    server.server_close()


def test_tls_checks_the_host_name_and_a_stalled_handshake_is_cut(tls_receiver) -> None:  # type: ignore[no-untyped-def]
    port, trusted = tls_receiver
    pool = webhook_http.new_pool(trusted)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts the connection (backlog), never answers the hello
    try:
        url = _url(port, b"https")
        assert webhook_http.post(pool, url, HEADERS, b"{}", 3.0, sni_hostname="hooks.example") == 204
        with pytest.raises(httpcore.ConnectError):
            webhook_http.post(pool, url, HEADERS, b"{}", 3.0, sni_hostname="elsewhere.example")
        started = time.monotonic()
        with pytest.raises(httpcore.TimeoutException):
            stalled = _url(silent.getsockname()[1], b"https")
            webhook_http.post(pool, stalled, HEADERS, b"{}", 1.0, sni_hostname="hooks.example")
        assert time.monotonic() - started < 2.0
    finally:
        silent.close()
        pool.close()
