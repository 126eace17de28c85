"""The artifact store: every read, write, list and delete of stored bytes, on a local folder or an S3 bucket.

Built on fsspec (s3fs for ``s3://``), chosen by ``Settings.store_url()``. A stored file is named by its
*location*: an absolute path on the file store (what records always held), ``s3://bucket/prefix/...`` on S3.
Nothing outside the store's root is read or deleted. Where a library needs a file on disk (Keras loading a
``.keras``, a table reader), ``fetch`` gives a local copy (the file itself on the file store). A remote store
that cannot be reached, or refuses the credentials, raises ``StorageUnavailable`` whose message names neither a
path nor a credential.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from tensorq.core.errors import StorageUnavailable
from tensorq.core.settings import Settings

CHUNK_BYTES = 1024 * 1024
READ_AHEAD_BYTES = 8 * 1024 * 1024  # S3 reads ahead (and writes parts of) this much per open file


def store_options(settings: Settings, url: str | None = None) -> dict[str, Any]:
    """fsspec options of ``url`` (default the store's, ``settings.store_url()``): for ``s3://``, the S3
    endpoint, credentials and short timeouts."""
    if not (url or settings.store_url()).startswith("s3://"):
        return {}
    client: dict[str, Any] = {}
    if settings.s3_endpoint_url:
        client["endpoint_url"] = settings.s3_endpoint_url
    if settings.aws_region:
        client["region_name"] = settings.aws_region
    options: dict[str, Any] = {
        "client_kwargs": client,
        "config_kwargs": {
            "connect_timeout": settings.store_timeout_s,
            "read_timeout": settings.store_timeout_s,
            "retries": {"max_attempts": 2},
            # A ranged read is checked only where the store says so: rclone (and other S3-compatible stores)
            # send the whole object's checksum with a part of it, which botocore's default validation refuses.
            "response_checksum_validation": "when_required",
        },
        "skip_instance_cache": True,
        "use_listings_cache": False,
        # What one open file reads ahead (and writes per multipart part): s3fs's own default is 50 MiB, so a
        # reader of a few bytes held 50 MiB, and a 40 MiB file read whole into memory (issue 21, large uploads).
        "default_block_size": READ_AHEAD_BYTES,
    }
    if settings.aws_access_key_id is not None and settings.aws_secret_access_key is not None:
        options["key"] = settings.aws_access_key_id.get_secret_value()
        options["secret"] = settings.aws_secret_access_key.get_secret_value()
    return options


def _remote_faults() -> tuple[type[BaseException], ...]:
    """The errors of a remote store that mean it cannot be reached or refuses us (never the request's fault)."""
    faults: list[type[BaseException]] = [ConnectionError, TimeoutError, PermissionError]
    with contextlib.suppress(ImportError):
        import botocore.exceptions

        faults.append(botocore.exceptions.BotoCoreError)
    with contextlib.suppress(ImportError):
        import aiohttp

        faults.append(aiohttp.ClientError)
    return tuple(faults)


@contextlib.contextmanager
def reaching(faults: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Turn a remote store's outage or refusal (``faults``) into StorageUnavailable (no path, no credential)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except faults as exc:
        reason = "refused the credentials" if isinstance(exc, PermissionError) else "cannot be reached"
        raise StorageUnavailable(f"the artifact store {reason}; retry later", details={"service": "storage"}) from None


def filesystem(url: str, settings: Settings) -> tuple[Any, str, tuple[type[BaseException], ...]]:
    """The fsspec filesystem of ``url`` (with the store's S3 endpoint and keys), its path there, and the errors
    that mean it cannot be reached."""
    fs, path = fsspec.core.url_to_fs(url, **store_options(settings, url))
    return fs, path, () if isinstance(fs, LocalFileSystem) else _remote_faults()


class ArtifactStore:
    """Stored bytes under one root, on a local folder (``file://``) or an object store (``s3://``)."""

    def __init__(self, url: str, options: dict[str, Any] | None = None, scratch: Path | None = None) -> None:
        fs, root = fsspec.core.url_to_fs(url, **(options or {}))
        self.fs = fs
        self.local = isinstance(fs, LocalFileSystem)
        self.root = str(Path(root).resolve()) if self.local else root.strip("/")
        self.scheme = "" if self.local else url.split("://", 1)[0]
        self.scratch = Path(scratch) if scratch is not None else Path(self.root) / ".scratch"
        self._faults = () if self.local else _remote_faults()

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactStore:
        """The store ``settings`` name (``artifact_url``, else the ``artifact_dir`` folder)."""
        return cls(settings.store_url(), store_options(settings), Path(settings.scratch_dir).expanduser())

    # Locations.

    def location(self, *parts: str) -> str:
        """The location of ``parts`` joined under the root."""
        key = "/".join(p.strip("/") for p in parts if p)
        if self.local:
            return str(Path(self.root, key))
        return f"{self.scheme}://{self.root}/{key}"

    def job_location(self, job_id: str, name: str | None = None) -> str:
        """A job's folder (or the file ``name`` in it)."""
        return self.location("jobs", job_id, name or "")

    def _path(self, location: str) -> str | None:
        """The filesystem path of ``location`` when it lies under the root, else None."""
        if self.local:
            resolved = Path(location).resolve()
            return str(resolved) if resolved.is_relative_to(self.root) else None
        prefix = f"{self.scheme}://{self.root}/"
        if not location.startswith(prefix) or ".." in location.removeprefix(prefix).split("/"):
            return None
        return location.removeprefix(f"{self.scheme}://")

    def inside(self, location: str) -> bool:
        """Whether ``location`` lies under the store's root."""
        return self._path(location) is not None

    def object_path(self, location: str) -> str:
        """The filesystem path (``bucket/key`` on S3) of ``location``; FileNotFoundError when outside the root."""
        return self._checked(location)

    def reach(self) -> contextlib.AbstractContextManager[None]:
        """A block whose store outage or refusal becomes StorageUnavailable (for calls made on ``fs`` directly)."""
        return self._reach()

    def local_path(self, location: str) -> Path | None:
        """The file itself on disk (file store only), else None."""
        path = self._path(location)
        return Path(path) if self.local and path is not None else None

    def _checked(self, location: str) -> str:
        path = self._path(location)
        if path is None:
            raise FileNotFoundError("not in the artifact store")
        return path

    def _reach(self) -> contextlib.AbstractContextManager[None]:
        """Turn a remote store's outage or refusal into StorageUnavailable (no path, no credential)."""
        return reaching(self._faults)

    # Reads.

    def check(self) -> None:
        """Raise StorageUnavailable unless the store answers."""
        with self._reach():
            try:
                self.fs.info(self.root)
            except FileNotFoundError:  # an empty prefix: the store answered
                pass

    def exists(self, location: str) -> bool:
        """Whether a file is stored at ``location``."""
        path = self._path(location)
        if path is None:
            return False
        with self._reach():
            try:  # info, not fs.exists: that one answers False when the store cannot be reached
                return self.fs.info(path).get("type") == "file"
            except FileNotFoundError:
                return False

    def size(self, location: str) -> int:
        """The stored file's size in bytes; 0 when it is missing."""
        path = self._path(location)
        if path is None:
            return 0
        with self._reach():
            try:
                return int(self.fs.size(path) or 0)
            except FileNotFoundError:
                return 0

    @contextlib.contextmanager
    def open(self, location: str, mode: str = "rb") -> Iterator[IO[bytes]]:
        """The stored file opened for reading (``rb``) or writing (``wb``, whole once closed)."""
        path = self._checked(location)
        with self._reach():
            if "w" in mode and self.local:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open(path, mode) as handle:
                yield handle

    def listing(self, location: str) -> dict[str, int]:
        """Every file under the folder ``location``: its location and size."""
        path = self._path(location)
        if path is None:
            return {}
        with self._reach():
            try:
                found = self.fs.find(path, detail=True)
            except FileNotFoundError:
                return {}
        prefix = "" if self.local else f"{self.scheme}://"
        return {f"{prefix}{name}": int(info.get("size") or 0) for name, info in found.items()}

    def get(self, location: str, destination: Path) -> Path:
        """Copy the stored file to ``destination`` on local disk (whole or not at all)."""
        path = self._checked(location)
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with self._reach():
                # One ranged stream at a time: s3fs's concurrent parts held block-sized buffers in memory each,
                # and rclone's whole-object checksum failed their validation.
                self.fs.get_file(path, str(partial), **({} if self.local else {"max_concurrency": 1}))
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)
        return destination

    @contextlib.contextmanager
    def fetch(self, location: str) -> Iterator[Path]:
        """A local copy of the stored file while the block runs (the file itself on the file store)."""
        here = self.local_path(location)
        if here is not None:
            if not here.is_file():
                raise FileNotFoundError("not in the artifact store")
            yield here
            return
        name = Path(self._checked(location)).name
        folder = self.scratch / "fetched" / uuid.uuid4().hex
        try:
            yield self.get(location, folder / name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # Writes.

    def put(self, source: Path, location: str, move: bool = False) -> str:
        """Store the local file ``source`` at ``location`` (readers see it whole or not at all); its location."""
        path = self._checked(location)
        if self.local:
            target = Path(path)
            if Path(source).resolve() == target:
                return location
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
            try:
                if move:
                    shutil.move(source, partial)
                else:
                    shutil.copyfile(source, partial)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
            return location
        with self._reach():
            self.fs.put_file(str(source), path)
        if move:
            Path(source).unlink(missing_ok=True)
        return location

    def scratch_folder(self, *parts: str) -> Path:
        """A local folder for files on their way in or out (under the store's root on the file store, so that a
        finished upload is moved in place rather than copied)."""
        folder = Path(self.root, ".staging", *parts) if self.local else self.scratch.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # Deletes.

    def remove_file(self, location: str) -> int:
        """Delete the stored file at ``location`` (only under the root); bytes freed."""
        path = self._path(location)
        if path is None:
            return 0
        size = self.size(location)
        if size == 0 and not self.exists(location):
            return 0
        with self._reach():
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)
        if self.local:
            with contextlib.suppress(OSError):
                Path(path).parent.rmdir()  # only when empty
        return size

    def remove_folder(self, location: str, keep: Iterable[str] = ()) -> int:
        """Delete the folder ``location`` (only under the root) except the files at ``keep``; bytes freed."""
        kept = {p for p in (self._path(k) for k in keep) if p is not None}
        prefix = "" if self.local else f"{self.scheme}://"
        freed = 0
        for name, size in self.listing(location).items():
            if name.removeprefix(prefix) in kept:
                continue
            with self._reach():
                try:
                    self.fs.rm_file(name.removeprefix(prefix))
                except FileNotFoundError:  # a concurrent sweep removed it first
                    continue
            freed += size
        path = self._path(location)
        if self.local and path is not None:
            _prune_empty(Path(path))
        return freed


def _prune_empty(folder: Path) -> None:
    """Remove the empty folders under ``folder``, and it when left empty."""
    if not folder.is_dir():
        return
    for item in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            if item.is_dir() and not item.is_symlink():
                item.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()
