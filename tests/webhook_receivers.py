"""Webhook receivers for tests and drills: threaded ``http.server`` instances on 127.0.0.1 that answer well
(recording when each delivery arrived) or misbehave: drip the answer's head or body one byte at a time,
hang without answering, or answer with a huge body."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "drip_head", "drip_body", "hang", "huge")
CHUNK = b"x" * (1 << 20)


class TestReceiver:
    """One receiver in ``mode``; ``arrivals`` holds (monotonic time, headers, body) of every request it read."""

    __test__ = False  # not a pytest class

    def __init__(self, mode: str = "ok", *, drip_s: float = 3.0, huge_bytes: int = 400 << 20) -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.arrivals: list[tuple[float, dict[str, str], bytes]] = []
        self.contacted = threading.Event()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.arrivals.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
                receiver.contacted.set()
                try:
                    receiver._answer(self)
                except OSError:
                    pass  # the sender hung up, as it should

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.drip_s = drip_s
        self.huge_bytes = huge_bytes

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        out = handler.wfile
        if self.mode == "ok":
            handler.send_response(200)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif self.mode == "hang":
            self._released.wait()
        elif self.mode == "drip_head":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                out.write(bytes([byte]))
                out.flush()
                if self._released.wait(self.drip_s):
                    return
        elif self.mode == "drip_body":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            out.flush()
            while not self._released.wait(self.drip_s):
                out.write(b".")
                out.flush()
        else:  # huge
            out.write(f"HTTP/1.1 200 OK\r\nContent-Length: {self.huge_bytes}\r\n\r\n".encode())
            for _ in range(self.huge_bytes // len(CHUNK)):
                out.write(CHUNK)

    def job_ids(self) -> list[str]:
        """The job ids of the deliveries received, in order."""
        return [json.loads(body)["id"] for _, _, body in self.arrivals]

    def arrived(self, job_id: str) -> float | None:
        """When the notification of ``job_id`` arrived (monotonic), or None."""
        for at, _, body in list(self.arrivals):
            if json.loads(body)["id"] == job_id:
                return at
        return None

    def stop(self) -> None:
        """Release every hanging answer and stop serving."""
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
