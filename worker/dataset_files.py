"""A dataset as a local file for the readers of ``ml.datasets``: a stored upload's local copy, or a dataset by
reference gathered from its shards (checked against the tenant's allowed prefixes again, since the operator
may have narrowed them). Parquet shards are copied batch by batch into one file and CSV shards line by line,
so no shard is held whole in memory; a shard that cannot be read fails the job naming it."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from tensorq.core.dataset_urls import Reference, Shard, corrupt, resolve, shard_name
from tensorq.core.errors import InvalidRequest
from tensorq.core.settings import Settings
from tensorq.core.store import filesystem, reaching
from worker.storage import store_for

ARROW_FAULTS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, EOFError)
BATCH_ROWS = 65_536


@contextlib.contextmanager
def local_dataset(settings: Settings, path: str, tenant_name: str) -> Iterator[Path]:
    """A local file of the dataset stored at ``path`` (an upload's location, or a dataset URL) while the
    block runs."""
    store = store_for(settings)
    if store.inside(path):
        with store.fetch(path) as local:
            yield local
        return
    reference = resolve(path, settings.dataset_prefixes(tenant_name), settings)
    folder = store.scratch / "datasets" / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield gather(reference, settings, folder / f"dataset.{reference.format}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _opened(shard: Shard, settings: Settings) -> Iterator[IO[bytes]]:
    fs, path, faults = filesystem(shard.url, settings)
    with reaching(faults), fs.open(path, "rb") as handle:
        yield handle


def gather(reference: Reference, settings: Settings, target: Path) -> Path:
    """Write the reference's shards, in order, as one file at ``target``."""
    if reference.format == "parquet":
        _gather_parquet(reference, settings, target)
    else:
        _gather_csv(reference, settings, target)
    return target


def _gather_parquet(reference: Reference, settings: Settings, target: Path) -> None:
    writer: pq.ParquetWriter | None = None
    try:
        for shard in reference.shards:
            with _opened(shard, settings) as handle:
                try:
                    parquet = pq.ParquetFile(handle)
                    if writer is None:
                        writer = pq.ParquetWriter(target, parquet.schema_arrow)
                    elif not parquet.schema_arrow.equals(writer.schema, check_metadata=False):
                        name = shard_name(shard)
                        raise InvalidRequest(
                            f"shard {name} has other columns than the first shard",
                            code="shard_schema_mismatch",
                            details={"shard": name},
                        )
                    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                        writer.write_batch(batch)
                except ARROW_FAULTS:
                    raise corrupt(shard) from None
    finally:
        if writer is not None:
            writer.close()


def _gather_csv(reference: Reference, settings: Settings, target: Path) -> None:
    header: bytes | None = None
    with target.open("wb") as out:
        for shard in reference.shards:
            with _opened(shard, settings) as handle:
                first = handle.readline()
                if header is None:
                    header = first
                    out.write(first if first.endswith(b"\n") else first + b"\n")
                elif first.rstrip(b"\r\n") != header.rstrip(b"\r\n"):
                    name = shard_name(shard)
                    raise InvalidRequest(
                        f"shard {name} has another header than the first shard",
                        code="shard_schema_mismatch",
                        details={"shard": name},
                    )
                last = b"\n"
                while chunk := handle.read(1024 * 1024):
                    out.write(chunk)
                    last = chunk[-1:]
                if last != b"\n":
                    out.write(b"\n")
