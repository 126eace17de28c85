"""A worker's model cache: recently used model versions on local disk, so a hot model is not downloaded per job.

Keyed by the version's id (a new version is a new file, never served from an old one), bounded by
``Settings.model_cache_mb`` with the least recently used (the file's access time, set on each use) out first.
Loaded models stay in memory too: ``ml.inference``'s per-process LRU, keyed by the cached file. On the file
store a version's file is already on local disk and is used where it lies."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from db.records import ModelVersionRecord
from tensorq.core.errors import InvalidRequest
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore


class ModelCache:
    """Local copies of model versions under ``folder``, at most ``max_bytes`` of them."""

    def __init__(self, store: ArtifactStore, folder: Path, max_bytes: int) -> None:
        self.store = store
        self.folder = folder
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings, store: ArtifactStore) -> ModelCache:
        """The cache ``settings`` configure."""
        return cls(store, Path(settings.model_cache_dir).expanduser(), settings.model_cache_mb * 1024 * 1024)

    def path(self, version: ModelVersionRecord) -> Path:
        """A local ``.keras`` file of ``version``: the stored file itself on the file store, else a cached copy
        (downloaded on a miss)."""
        here = self.store.local_path(version.path)
        if here is not None:
            return here
        target = self.folder / f"{version.id}.keras"
        try:
            stat = target.stat()
            os.utime(target, ns=(time.time_ns(), stat.st_mtime_ns))  # used now; mtime kept (the memory LRU's key)
            return target
        except FileNotFoundError:
            pass
        try:
            self.store.get(version.path, target)
        except FileNotFoundError:  # gone from the store, or never inside it: as ml.inference.load_model says
            raise InvalidRequest("the model file is missing", details={"version_id": version.id}) from None
        self.evict(keep=target)
        return target

    def entries(self) -> list[Path]:
        """The cached files, least recently used first."""
        found = []
        for path in self.folder.glob("*.keras"):
            with contextlib.suppress(FileNotFoundError):
                found.append((path.stat().st_atime_ns, path))
        return [path for _, path in sorted(found)]

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least recently used files until the cache fits its bound (never ``keep``); those removed."""
        entries = self.entries()
        sizes = {}
        for path in entries:
            with contextlib.suppress(FileNotFoundError):
                sizes[path] = path.stat().st_size
        total = sum(sizes.values())
        removed = []
        for path in entries:
            if total <= self.max_bytes:
                break
            if path == keep or path not in sizes:
                continue
            path.unlink(missing_ok=True)  # another process may have removed it first
            total -= sizes[path]
            removed.append(path)
        return removed
