"""Describing a dataset by reference without holding it: the row count from the Parquet footers, the schema and
first rows from a bounded sample of the first shard (its first rows, or the first MiB of a CSV), profiled
like an upload (``api.uploads.profile_upload``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from api.uploads import profile_upload
from tensorq.core.dataset_urls import Reference, Shard, corrupt
from tensorq.core.settings import Settings
from tensorq.core.store import filesystem, reaching

SAMPLE_ROWS = 2000
SAMPLE_BYTES = 1024 * 1024
MAX_FOOTERS = 200  # Parquet footers read for the row count; more shards leave it unknown (null)
ARROW_FAULTS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, EOFError)


def _sample(shard: Shard, fmt: str, settings: Settings, target: Path) -> None:
    """Write the first rows (Parquet) or the first whole lines within SAMPLE_BYTES (CSV) of ``shard``."""
    fs, path, faults = filesystem(shard.url, settings)
    with reaching(faults), fs.open(path, "rb") as handle:
        if fmt == "csv":
            data = handle.read(SAMPLE_BYTES)
            target.write_bytes(data if len(data) < SAMPLE_BYTES else data[: data.rfind(b"\n") + 1])
            return
        try:
            parquet = pq.ParquetFile(handle)
            batch = next(parquet.iter_batches(batch_size=SAMPLE_ROWS), None)
            table = pa.Table.from_batches([batch]) if batch is not None else parquet.schema_arrow.empty_table()
        except ARROW_FAULTS:
            raise corrupt(shard) from None
        pq.write_table(table, target)


def _rows(reference: Reference, settings: Settings) -> int | None:
    """The rows of a Parquet dataset from its shards' footers (None for CSV, or too many shards)."""
    if reference.format != "parquet" or len(reference.shards) > MAX_FOOTERS:
        return None
    total = 0
    for shard in reference.shards:
        fs, path, faults = filesystem(shard.url, settings)
        with reaching(faults), fs.open(path, "rb") as handle:
            try:
                total += pq.ParquetFile(handle).metadata.num_rows
            except ARROW_FAULTS:
                raise corrupt(shard) from None
    return total


def describe_reference(
    reference: Reference, settings: Settings, folder: Path
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The info and profile (schema, first rows) of a dataset by reference, read through a sample in ``folder``."""
    sample = folder / f"sample.{reference.format}"
    try:
        _sample(reference.shards[0], reference.format, settings, sample)
        _, info, profile = profile_upload(sample, settings.max_dataset_array_bytes, settings.max_cell_bytes)
    finally:
        sample.unlink(missing_ok=True)
    info = {
        **info,
        "rows": _rows(reference, settings),
        "sample_rows": info.get("rows"),
        "url": reference.url,
        "shards": len(reference.shards),
        "bytes": reference.size_bytes,
    }
    return info, profile
