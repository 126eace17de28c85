"""Request and response schemas of resumable dataset uploads (``/v1/datasets/uploads``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UploadStart(BaseModel):
    """The body of ``POST /v1/datasets/uploads``: the whole file's size, and optionally its name and sha256."""

    model_config = ConfigDict(extra="forbid")

    size_bytes: int = Field(ge=1, description="The file's size in bytes (at most TENSORQ_MAX_CHUNKED_UPLOAD_BYTES)")
    name: str | None = Field(default=None, max_length=200)
    sha256: str | None = Field(
        default=None, pattern="^[0-9a-f]{64}$", description="The file's SHA-256 (lowercase hex), checked at completion"
    )


class UploadOut(BaseModel):
    """An upload session: its parts, which of them arrived, and until when it stays open."""

    id: str
    name: str
    status: Literal["open", "completing", "completed", "aborting"]
    size_bytes: int
    part_bytes: int = Field(description="Every part's size but the last one's (the rest)")
    parts: int
    received: list[int] = Field(description="Indexes (from 0) of the parts stored whole")
    missing: int = Field(description="How many parts are still to send")
    presigned: bool = Field(description="Whether parts may be PUT straight to the object store (S3)")
    expires_at: datetime
    dataset_id: str | None = Field(default=None, description="The dataset, once completed")


class PartStored(BaseModel):
    """A part stored (again: a re-sent part replaces the earlier one)."""

    index: int
    size_bytes: int


class PartUrlRequest(BaseModel):
    """The body of ``POST /v1/datasets/uploads/{id}/urls``: the parts to presign."""

    model_config = ConfigDict(extra="forbid")

    parts: list[int] = Field(min_length=1, max_length=1000, description="Part indexes (from 0)")


class PartUrl(BaseModel):
    """Where to PUT one part's bytes (no Authorization header: the URL is signed)."""

    index: int
    method: Literal["PUT"]
    url: str


class PartUrls(BaseModel):
    """Presigned part URLs, valid until ``expires_at``."""

    urls: list[PartUrl]
    expires_at: datetime


class UploadAborted(BaseModel):
    """An upload aborted: its parts removed."""

    aborted: Literal["upload"]
    id: str


UPLOAD_SCHEMAS: list[type[BaseModel]] = [UploadStart, UploadOut, PartStored, PartUrlRequest, PartUrls, UploadAborted]
