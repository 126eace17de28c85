"""Describing a completed upload: profiled whole like a one-request upload when it is within
``max_upload_bytes``; larger, only Parquet or CSV (what workers stream), described like a dataset by reference
from its footer and a bounded sample (``api.dataset_refs``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.dataset_refs import describe_reference
from api.uploads import profile_upload
from tensorq.core.dataset_urls import Reference, Shard
from tensorq.core.errors import PayloadTooLarge
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
    reference = Reference(url=location, format=fmt, shards=[Shard(url=location, size=size)])
    info, profile = describe_reference(reference, settings, folder)
    info.pop("url", None)  # a server-made location: never shown
    return fmt, info, profile
