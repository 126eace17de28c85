"""Serving the API under gunicorn: gevent workers by default, so a long-poll parks a greenlet on the change
signal instead of holding a thread (one process holds thousands of waits); ``gthread`` remains a choice.

gunicorn answers some requests itself before the app sees them (a request line over ``limit_request_line``:
414, too many or too large headers: 431, a malformed request line: 400). Its workers write those answers
through ``gunicorn.util.write_error`` as HTML; ``JsonErrorWorker`` makes them the API's JSON error shape.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.gthread import ThreadWorker

from tensorq.core.settings import Settings

# The longest message of gunicorn's own answers (some quote the request line they refused).
MAX_MESSAGE = 200


def json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Write gunicorn's own error answer as ``{"error": {"code", "message", "details"}}`` (the code from the
    reason, as the API names Werkzeug's errors: ``URI Too Long`` is ``uri_too_long``)."""
    code = reason.lower().replace(" ", "_") or "error"
    message = f"{reason}: {mesg}"[:MAX_MESSAGE] if mesg else reason
    body = json.dumps({"error": {"code": code, "message": message, "details": None}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class JsonErrorWorker(ThreadWorker):
    """gunicorn's threaded (``gthread``) worker whose own error answers are JSON, like every other answer."""

    def init_process(self) -> None:
        """In the worker process, before it serves: gunicorn's error writer becomes ``json_error``."""
        util.write_error = json_error  # the one writer gunicorn's Worker.handle_error calls
        super().init_process()


class GeventJsonErrorWorker(GeventWorker):
    """gunicorn's gevent worker (after ``monkey.patch_all``: psycopg then picks its cooperative wait function,
    Redis clients and locks yield to other greenlets) whose own error answers are JSON."""

    def init_process(self) -> None:
        """In the worker process, before it serves: gunicorn's error writer becomes ``json_error``."""
        util.write_error = json_error
        super().init_process()

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """Answer as gunicorn does, then close as gthread does: drain what the client still sends, so that it reads
        the answer instead of a reset (the gevent worker would close at once)."""
        super().handle_error(req, client, addr, exc)
        util.close_graceful(client)

    def load_wsgi(self) -> None:
        """Load the app, then make sure psycopg waits cooperatively (it picks its C wait function when it was
        imported before ``monkey.patch_all``, and that would stall every greenlet during a query); fsspec's S3
        calls go off the hub first (``tensorq.green_fsspec``)."""
        from tensorq.green_fsspec import keep_fsspec_off_the_hub

        keep_fsspec_off_the_hub()
        super().load_wsgi()
        waiting = vars(sys.modules["psycopg.waiting"]) if "psycopg.waiting" in sys.modules else {}
        if waiting and waiting["wait"] is waiting.get("wait_c"):
            waiting["wait"] = waiting["wait_select"]


WORKER_CLASSES = {"gevent": "tensorq.server.GeventJsonErrorWorker", "gthread": "tensorq.server.JsonErrorWorker"}


def gunicorn_options(settings: Settings, workers: int, threads: int) -> dict[str, Any]:
    """The options ``tensorq api`` runs gunicorn with (the bench serves its peers with the same)."""
    return {
        "workers": workers,
        "threads": threads,
        "worker_class": WORKER_CLASSES[settings.api_worker_class],
        # gevent: one greenlet per connection; room for every long-poll the wait slots allow, and the rest.
        "worker_connections": settings.max_waits + settings.api_extra_connections,
        "timeout": 120,
        # gevent reads a connection's first request under the keep-alive timeout too: with the default 2 s, a
        # burst of a thousand connections on a busy process closed some before their request was read.
        "keepalive": 10,
        "accesslog": "-",
        "access_log_format": '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss',
    }


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from tensorq.webapp import make_app

        return make_app(self.settings)


def serve(settings: Settings, host: str, port: int, workers: int = 2, threads: int = 16) -> None:
    """Run the API on ``host:port`` until stopped."""
    _Gunicorn(
        settings,
        {"bind": f"{host}:{port}", **gunicorn_options(settings, workers, threads)},
    ).run()
