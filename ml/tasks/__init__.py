"""What each architecture learns, and so how it is built, fed, fitted, scored and described.

``for_architecture(name)`` picks the task of an architecture (``ml.catalog.TASKS``): ``classify``
(mlp, cnn, rnn), ``autoencode`` (vae) or ``recommend`` (recommender).
"""

from __future__ import annotations

from ml.catalog import TASKS
from ml.tasks.autoencode import Autoencode
from ml.tasks.base import Task
from ml.tasks.classify import Classify
from ml.tasks.recommend import Recommend

_TASKS: dict[str, Task] = {"classify": Classify(), "autoencode": Autoencode(), "recommend": Recommend()}


def for_architecture(architecture: str) -> Task:
    """The task of ``architecture``; architectures registered at run time are classifiers."""
    return _TASKS[TASKS.get(architecture, "classify")]


__all__ = ["Task", "for_architecture"]
