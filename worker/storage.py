"""This worker process's artifact store and model cache, built once per process from its settings (an
object store's client is not carried over a fork: a child builds its own)."""

from __future__ import annotations

import os
from pathlib import Path

from db.records import ModelVersionRecord
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore
from worker.model_cache import ModelCache

_built: dict[tuple[int, int], tuple[Settings, ArtifactStore, ModelCache]] = {}


def _for(settings: Settings) -> tuple[Settings, ArtifactStore, ModelCache]:
    key = (os.getpid(), id(settings))
    if key not in _built:
        store = ArtifactStore.from_settings(settings)
        _built[key] = (settings, store, ModelCache.from_settings(settings, store))
    return _built[key]


def store_for(settings: Settings) -> ArtifactStore:
    """The artifact store ``settings`` name, in this process."""
    return _for(settings)[1]


def model_file(settings: Settings, version: ModelVersionRecord) -> Path:
    """A local ``.keras`` file of ``version`` (from the model cache)."""
    return _for(settings)[2].path(version)
