"""A job's files: written in a local folder while it runs, published to the artifact store by name.

On the file store the local folder is the job's stored folder itself (publishing moves nothing); on an object
store it is a scratch folder of this worker, removed when the job ends here."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from tensorq.core.store import ArtifactStore


class JobFiles:
    """The local folder of one job's files and their stored locations."""

    def __init__(self, store: ArtifactStore, job_id: str) -> None:
        self.store = store
        self.job_id = job_id
        here = store.local_path(store.job_location(job_id))
        self.remote = here is None
        self.folder = here if here is not None else store.scratch / "jobs" / job_id

    def local(self) -> Path:
        """The local folder, made when missing."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    def location(self, name: str) -> str:
        """Where the file ``name`` of this job is stored."""
        return self.store.job_location(self.job_id, name)

    def publish(self, *names: str) -> list[str]:
        """Store the local files ``names`` (those that exist); their locations."""
        stored = []
        for name in names:
            source = self.folder / name
            if self.remote and source.is_file():
                self.store.put(source, self.location(name))
            stored.append(self.location(name))
        return stored

    def pull(self, names: Iterable[str]) -> None:
        """Copy the stored files ``names`` that exist (a checkpoint left by an earlier attempt) into the folder."""
        if not self.remote:
            return
        for name in names:
            if self.store.exists(self.location(name)):
                self.store.get(self.location(name), self.local() / name)

    def discard_local(self) -> None:
        """Remove the local copy (an object store's scratch folder only)."""
        if self.remote:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def job_files(store: ArtifactStore, job_id: str) -> Iterator[JobFiles]:
    """A job's files while the block runs; the local scratch copy is removed after it."""
    files = JobFiles(store, job_id)
    try:
        yield files
    finally:
        files.discard_local()
