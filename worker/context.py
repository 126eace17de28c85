"""What a job handler is given and what it hands back: the ground between the runner and the handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from db.database import Database
from db.records import JobRecord, ModelVersionDraft
from tensorq.core.routing import Publisher
from tensorq.core.settings import Settings
from worker.control import JobControl


@dataclass
class JobContext:
    """Everything a handler may use for one job."""

    settings: Settings
    db: Database
    job: JobRecord
    control: JobControl
    # Where jobs a handler makes are published (a tune's next trials); None: the reaper's outbox sends them.
    publisher: Publisher | None = None


@dataclass
class HandlerResult:
    """What a handler produced: the job's result and, for training, the model to register."""

    result: dict[str, Any]
    model: ModelVersionDraft | None = None


Handler = Callable[[JobContext], HandlerResult]
