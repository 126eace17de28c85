"""Serving the API under gunicorn (threaded workers, so long-polls do not block others)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from tensorq.settings import Settings


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
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": 120,
            "accesslog": "-",
            "access_log_format": '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss',
        },
    ).run()
