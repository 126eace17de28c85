"""A worker container's health check: its own Celery node answers a ping on the broker.

python3 -m worker.healthcheck     # exit 0 when a node named ...@<this hostname> replies
"""

from __future__ import annotations

import socket
import sys

from tensorq.core.settings import Settings
from worker.celery_app import make_celery


def node_answers(hostname: str, timeout_s: float = 5.0) -> bool:
    """Whether a worker node on ``hostname`` (the container id) answers a broadcast ping."""
    app = make_celery(Settings())
    try:
        replies = app.control.ping(timeout=timeout_s) or []
    finally:
        app.close()
    return any(name.endswith(f"@{hostname}") for reply in replies for name in reply)


def main() -> int:
    """Exit status for Docker's HEALTHCHECK."""
    hostname = socket.gethostname()
    if node_answers(hostname):
        return 0
    print(f"no Celery worker node on {hostname} answered a ping", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
