"""One webhook POST under a deadline on the whole exchange, reading at most ``ANSWER_LIMIT`` bytes of the answer.

httpcore's timeouts bound each socket operation, so a receiver that sends a byte every few seconds would
never trip them. Here every connect, TLS handshake, send and read of the calling thread is bounded by the time
left before that thread's deadline (a network backend that clamps each operation's timeout), so the attempt
as a whole ends at its deadline, whatever the receiver drips. Connections are never kept alive: each attempt
connects to the address its target check has just returned."""

from __future__ import annotations

import ssl
import threading
import time
import typing
from collections.abc import Iterable

import httpcore

ANSWER_LIMIT = 64 * 1024  # bytes of an answer's body read at most; the status is all that counts
_deadline = threading.local()


def _left(error: type[Exception], timeout: float | None) -> float | None:
    """The timeout for one socket operation: the caller's, but never past the calling thread's deadline."""
    at: float | None = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the delivery attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the thread's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(httpcore.ReadTimeout, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(httpcore.WriteTimeout, timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname, _left(httpcore.ConnectTimeout, timeout))
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, with every stream bounded by the calling thread's deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _left(httpcore.ConnectTimeout, timeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[typing.Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks are sent over TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def new_pool(ssl_context: ssl.SSLContext | None = None) -> httpcore.ConnectionPool:
    """A connection pool for deliveries: deadline-bound streams, no keep-alive, no retries, no proxy; TLS with
    ``ssl_context`` (default: certifi's roots, checking the URL's host name)."""
    return httpcore.ConnectionPool(
        ssl_context=ssl_context,
        max_connections=None,
        max_keepalive_connections=0,
        retries=0,
        network_backend=_DeadlineBackend(),
    )


def post(
    pool: httpcore.ConnectionPool,
    url: httpcore.URL,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    deadline_s: float,
    sni_hostname: str | None = None,
) -> int:
    """POST ``body`` and return the answer's status, all within ``deadline_s`` (httpcore.TimeoutException
    past it); at most ``ANSWER_LIMIT`` bytes of the answer's body are read, within the same deadline."""
    _deadline.at = time.monotonic() + deadline_s
    extensions: dict[str, typing.Any] = {
        "timeout": {"connect": deadline_s, "read": deadline_s, "write": deadline_s, "pool": deadline_s}
    }
    if sni_hostname is not None:
        extensions["sni_hostname"] = sni_hostname
    try:
        with pool.stream("POST", url, headers=headers, content=body, extensions=extensions) as answer:
            read = 0
            try:
                for chunk in answer.iter_stream():
                    read += len(chunk)
                    if read >= ANSWER_LIMIT:
                        break
            except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError):
                pass  # the status is in: a slow, cut or malformed body changes nothing
            return answer.status
    finally:
        _deadline.at = None
