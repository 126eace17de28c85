"""The API wired to the Celery broker: what ``tensorq serve`` and the local stack run."""

from __future__ import annotations

from flask import Flask

from api.app import create_app
from db.database import Database
from tensorq.core.settings import Settings
from worker.celery_app import make_celery
from worker.publisher import CeleryPublisher


def make_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    """The API for ``settings`` (from the environment when None), publishing through a Celery app."""
    settings = settings or Settings()
    return create_app(settings, publisher=CeleryPublisher(make_celery(settings)), database=database)
