"""What each request can reach: settings, the database and the publisher."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app, g

from api.broker_guard import BrokerGuard
from api.quotas import Quotas
from api.wait_slots import WaitSlots
from db.changes import ChangeListener
from db.database import Database
from db.records import Principal
from tensorq.core.routing import Publisher
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore


@dataclass
class Services:
    """The app's collaborators, built once by ``create_app``."""

    settings: Settings
    db: Database
    publisher: Publisher
    broker_guard: BrokerGuard
    quotas: Quotas
    store: ArtifactStore
    changes: ChangeListener | None = None
    wait_slots: WaitSlots = field(default_factory=lambda: WaitSlots(4, 12, 4))


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["tensorq"]


def principal() -> Principal:
    """The authenticated caller of the current request."""
    return g.principal
