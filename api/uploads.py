"""Uploads: the multipart file, size-limited copies, datasets typed by content (never by name), server-made names."""

from __future__ import annotations

import csv
import json
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from flask import request
from werkzeug.datastructures import FileStorage

from ml.catalog import TEXT_MAX_LINE_BYTES, TEXT_MAX_ROWS
from tensorq.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia

MAX_CSV_COLUMNS = 10_000
MAX_CSV_ROWS = 1_000_000
MAX_CSV_FIELD = 1_000_000


@dataclass(frozen=True)
class StoredUpload:
    """An upload that passed its checks and now lies under a server-made name."""

    id: str
    format: str
    path: Path
    size_bytes: int
    info: dict[str, Any]


def multipart_file(kind: str) -> FileStorage:
    """The request's multipart ``file`` field: 415 when the body is not multipart, 400 when it is missing."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMedia(f"upload {kind} as multipart/form-data with a 'file' field")
    upload = request.files.get("file")
    if upload is None:
        raise InvalidRequest("missing multipart field 'file'")
    return upload


def write_limited(stream: IO[bytes], path: Path, max_bytes: int) -> int:
    """Copy ``stream`` to ``path`` in 1 MiB chunks, refusing more than ``max_bytes`` (413); the size written."""
    size = 0
    with path.open("wb") as out:
        while chunk := stream.read(1024 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"upload larger than {max_bytes} bytes")
            out.write(chunk)
    return size


def store_upload(stream: IO[bytes], folder: Path, max_bytes: int) -> StoredUpload:
    """Write the upload to ``folder`` under a new id, check it, and describe it; 400 when unusable."""
    folder.mkdir(parents=True, exist_ok=True)
    upload_id = str(uuid.uuid4())
    partial = folder / f".{upload_id}.part"
    try:
        size = write_limited(stream, partial, max_bytes)
        fmt, info = describe(partial)
        final = folder / f"{upload_id}.{fmt}"
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)
    return StoredUpload(upload_id, fmt, final, size, info)


def describe(path: Path) -> tuple[str, dict[str, Any]]:
    """The format (``npz``, ``jsonl`` or ``csv``) and a summary of the file at ``path``."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == b"PK\x03\x04":
        return "npz", describe_npz(path)
    if _looks_like_jsonl(path):
        return "jsonl", describe_jsonl(path)
    return "csv", describe_csv(path)


def _looks_like_jsonl(path: Path) -> bool:
    """Whether the first non-empty line parses as a JSON object with a ``text`` key."""
    with path.open("rb") as handle:
        while raw := handle.readline(TEXT_MAX_LINE_BYTES + 1):
            if raw.strip():
                try:
                    first = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    return False
                return isinstance(first, dict) and "text" in first
    return False


def describe_jsonl(path: Path) -> dict[str, Any]:
    """Rows and label count of a text dataset: one JSON object per line with a string ``text`` and an integer
    or string ``label``, within bounded line count and length."""
    rows = 0
    labels: set[str] = set()
    with path.open("rb") as handle:
        while raw := handle.readline(TEXT_MAX_LINE_BYTES + 1):
            if len(raw) > TEXT_MAX_LINE_BYTES:
                raise InvalidRequest(f"line {rows + 1} of the text dataset is longer than {TEXT_MAX_LINE_BYTES} bytes")
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise InvalidRequest(f"text dataset line {rows + 1} is not UTF-8 JSON: {exc}") from None
            label = row.get("label") if isinstance(row, dict) else None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise InvalidRequest(f"text dataset line {rows + 1} needs a string 'text'")
            if isinstance(label, bool) or not isinstance(label, int | str):
                raise InvalidRequest(f"text dataset line {rows + 1} needs an integer or string 'label'")
            rows += 1
            if rows > TEXT_MAX_ROWS:
                raise InvalidRequest(f"a text dataset may have at most {TEXT_MAX_ROWS} lines")
            if len(labels) <= 10_000:
                labels.add(str(label))
    if rows == 0:
        raise InvalidRequest("the text dataset has no rows")
    return {"rows": rows, "labels": len(labels)}


def describe_npz(path: Path) -> dict[str, Any]:
    """Shapes of ``x`` and ``y`` in an ``.npz``, loaded without pickles."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not {"x", "y"} <= set(archive.files):
                raise InvalidRequest("an .npz dataset needs arrays 'x' and 'y'", details={"arrays": archive.files})
            x, y = archive["x"], archive["y"]
    except InvalidRequest:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidRequest(f"not a readable .npz of numeric arrays: {exc}") from None
    if x.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise InvalidRequest("'x' and 'y' must be numeric arrays")
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise InvalidRequest(
            "'x' must be (N, ...) and 'y' (N,) with the same N",
            details={"x_shape": list(x.shape), "y_shape": list(y.shape)},
        )
    if not np.all(np.isfinite(x)):
        raise InvalidRequest("'x' contains NaN or infinite values")
    return {"rows": int(len(x)), "x_shape": list(x.shape), "y_shape": list(y.shape), "x_dtype": str(x.dtype)}


def describe_csv(path: Path) -> dict[str, Any]:
    """Columns and row count of a UTF-8 CSV with a header, within bounded rows and columns."""
    csv.field_size_limit(MAX_CSV_FIELD)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header or len(header) < 2:
                raise InvalidRequest("a CSV dataset needs a header row with at least two columns")
            if len(header) > MAX_CSV_COLUMNS:
                raise InvalidRequest(f"a CSV dataset may have at most {MAX_CSV_COLUMNS} columns")
            if len(set(header)) != len(header):
                raise InvalidRequest("CSV column names must be unique")
            rows = 0
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise InvalidRequest(f"CSV row {rows + 2} has {len(row)} fields, the header {len(header)}")
                rows += 1
                if rows > MAX_CSV_ROWS:
                    raise InvalidRequest(f"a CSV dataset may have at most {MAX_CSV_ROWS} rows")
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidRequest(f"not a UTF-8 CSV file (or an .npz): {exc}") from None
    if rows == 0:
        raise InvalidRequest("the CSV dataset has no data rows")
    return {"rows": rows, "columns": header}
