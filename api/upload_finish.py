"""Describing a completed upload: profiled whole like a one-request upload when it is within
``max_upload_bytes``; larger, only Parquet or CSV (what workers stream), described like a dataset by reference
from its footer and a bounded sample (the sizes of ``api.dataset_refs``), read through the store's own
filesystem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from api.dataset_refs import ARROW_FAULTS, SAMPLE_BYTES, SAMPLE_ROWS
from api.uploads import profile_upload
from tensorq.core.errors import InvalidRequest, PayloadTooLarge
from tensorq.core.settings import Settings
from tensorq.core.store import ArtifactStore

HEAD_BYTES = 64


def sniff_large(head: bytes) -> str:
    """The format of a large upload from its first bytes: ``parquet`` or ``csv``; 413 for any other."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04") or head.lstrip().startswith(b"{"):
        raise PayloadTooLarge(
            "a dataset larger than the single-request upload limit must be Parquet or CSV (read in chunks)",
            code="upload_too_large_for_format",
        )
    return "csv"


def describe_completed(
    store: ArtifactStore, settings: Settings, location: str, size: int, folder: Path
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """The format, summary and profile of the completed upload stored at ``location`` (``folder``: scratch)."""
    if size <= settings.max_upload_bytes:
        with store.fetch(location) as local:
            return profile_upload(local, settings.max_dataset_array_bytes, settings.max_cell_bytes)
    with store.open(location) as handle:
        fmt = sniff_large(handle.read(HEAD_BYTES))
    sample = folder / f"sample.{fmt}"
    rows = _sample(store, location, fmt, sample)
    _, info, profile = profile_upload(sample, settings.max_dataset_array_bytes, settings.max_cell_bytes)
    return fmt, {**info, "rows": rows, "sample_rows": info.get("rows"), "bytes": size}, profile


def _sample(store: ArtifactStore, location: str, fmt: str, target: Path) -> int | None:
    """Write the first rows (Parquet) or the first whole lines within SAMPLE_BYTES (CSV) of the stored file
    to ``target``, read through the store's own filesystem; the Parquet footer's row count (None for CSV)."""
    with store.open(location) as handle:
        if fmt == "csv":
            data = handle.read(SAMPLE_BYTES)
            target.write_bytes(data if len(data) < SAMPLE_BYTES else data[: data.rfind(b"\n") + 1])
            return None
        try:
            table = pq.ParquetFile(handle)
            batch = next(table.iter_batches(batch_size=SAMPLE_ROWS), None)
            rows = table.metadata.num_rows
            pq.write_table(
                pa.Table.from_batches([batch]) if batch is not None else table.schema_arrow.empty_table(), target
            )
        except ARROW_FAULTS:
            raise InvalidRequest("the upload is not a readable Parquet file", code="invalid_parquet") from None
    return int(rows)
