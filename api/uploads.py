"""Uploads: the multipart file, size-limited copies, datasets typed by content (never by name), server-made names.

A zip is an ``.npz`` unless it holds ``.wav`` clips and no ``x.npy``: then an audio dataset, each clip's header
checked (``ml.audio.describe_zip``).

A table (CSV or Parquet) is profiled in the same bounded pass that checks it: each column's inferred type and
missing cells (``ml.tabular``) and its first rows, stored with the dataset for ``GET /v1/datasets/{id}``. A
Parquet file is profiled in Arrow with its strings kept as dictionaries (``ml.parquet``): no cell is expanded."""

from __future__ import annotations

import csv
import math
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from flask import request
from werkzeug.datastructures import FileStorage

from ml import audio, parquet, tabular
from ml.catalog import TEXT_MAX_LINE_BYTES, TEXT_MAX_ROWS
from ml.validation import text_row
from tensorq.core import bounded_json
from tensorq.core.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from tensorq.core.store import ArtifactStore

MAX_CSV_COLUMNS = 10_000
MAX_CSV_ROWS = 1_000_000
MAX_CSV_FIELD = 1_000_000
# What an .npz's arrays may unpack to (the worker holds them in memory), and the API's read size while checking.
MAX_NPZ_ARRAY_BYTES = 1024**3
NPZ_CHUNK_BYTES = 4 * 1024 * 1024
# Rows of a CSV profiled at once (in Arrow's kernels): at most this many rows, and this many cells.
PROFILE_CHUNK_ROWS = 4096
PROFILE_CHUNK_CELLS = 1_000_000
# The longest cell a table may hold, in UTF-8 bytes (``Settings.max_cell_bytes``): 1,000,000 rows of it make 1 GiB.
MAX_CELL_BYTES = 1024


NpyArray = tuple[tuple[int, ...], np.dtype, int, int]  # an .npy member's shape, dtype, header length, data bytes


@dataclass(frozen=True)
class StoredUpload:
    """An upload that passed its checks and now lies under a server-made name."""

    id: str
    format: str
    location: str  # in the artifact store
    size_bytes: int
    info: dict[str, Any]
    profile: dict[str, Any] | None = None  # {"schema": [...], "preview": {...}} of a table or a text dataset


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


def store_upload(
    stream: IO[bytes],
    store: ArtifactStore,
    tenant_id: str,
    max_bytes: int,
    max_array_bytes: int = MAX_NPZ_ARRAY_BYTES,
    max_cell_bytes: int = MAX_CELL_BYTES,
) -> StoredUpload:
    """Write the upload to local scratch under a new id, check and describe it, then store it among the
    tenant's datasets; 400 when unusable."""
    upload_id = str(uuid.uuid4())
    partial = store.scratch_folder("uploads") / f"{upload_id}.part"
    try:
        size = write_limited(stream, partial, max_bytes)
        fmt, info, profile = profile_upload(partial, max_array_bytes, max_cell_bytes)
        location = store.put(partial, store.location("datasets", tenant_id, f"{upload_id}.{fmt}"), move=True)
    finally:
        partial.unlink(missing_ok=True)
    return StoredUpload(upload_id, fmt, location, size, info, profile)


def describe(path: Path, max_array_bytes: int = MAX_NPZ_ARRAY_BYTES) -> tuple[str, dict[str, Any]]:
    """The format (``npz``, ``parquet``, ``jsonl`` or ``csv``) and a summary of the file at ``path``."""
    fmt, info, _ = profile_upload(path, max_array_bytes)
    return fmt, info


def profile_upload(
    path: Path, max_array_bytes: int = MAX_NPZ_ARRAY_BYTES, max_cell_bytes: int = MAX_CELL_BYTES
) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """The format, a summary, and the schema and first rows (None for an ``.npz``) of the file at ``path``; a
    table's data (Parquet's once expanded) within ``max_array_bytes`` and each of its cells ``max_cell_bytes``."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == b"PK\x03\x04":
        if audio.is_audio_zip(path):
            return "audio", audio.describe_zip(path), None
        return "npz", describe_npz(path, max_array_bytes), None
    if parquet.is_parquet(path):
        return "parquet", *profile_parquet(path, max_array_bytes, max_cell_bytes)
    if _looks_like_jsonl(path):
        return "jsonl", *profile_jsonl(path)
    return "csv", *profile_csv(path, max_cell_bytes)


def _looks_like_jsonl(path: Path) -> bool:
    """Whether the first non-empty line parses as a JSON object with a ``text`` key."""
    with path.open("rb") as handle:
        while raw := handle.readline(TEXT_MAX_LINE_BYTES + 1):
            if raw.strip():
                try:
                    first = bounded_json.loads(raw, what="the first line")
                except InvalidRequest as exc:
                    if exc.code == "invalid_request":
                        return False  # not JSON: a CSV, checked as one
                    raise
                return isinstance(first, dict) and "text" in first
    return False


def describe_jsonl(path: Path) -> dict[str, Any]:
    """Rows and label count of a text dataset (see ``profile_jsonl``)."""
    return profile_jsonl(path)[0]


def profile_jsonl(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rows and label count of a text dataset: one JSON object per line with a string ``text`` and an integer
    or string ``label``, within bounded line count and length; its schema and first lines."""
    rows = 0
    labels: set[str] = set()
    first: list[list[Any]] = []
    with path.open("rb") as handle:
        number = 0
        while raw := handle.readline(TEXT_MAX_LINE_BYTES + 1):
            number += 1
            row = text_row(raw, number, TEXT_MAX_LINE_BYTES)
            if row is None:
                continue
            text, label = row
            if len(first) < tabular.PREVIEW_ROWS:
                first.append([text, label])
            rows += 1
            if rows > TEXT_MAX_ROWS:
                raise InvalidRequest(f"a text dataset may have at most {TEXT_MAX_ROWS} lines")
            if len(labels) <= 10_000:
                labels.add(str(label))
    if rows == 0:
        raise InvalidRequest("the text dataset has no rows")
    schema = [
        {"name": "text", "type": "text", "missing": 0},
        {"name": "label", "type": "categorical", "missing": 0, "distinct": len(labels)},
    ]
    profile = {"schema": schema, "preview": tabular.preview(["text", "label"], first)}
    return {"rows": rows, "labels": len(labels)}, profile


def _npy_header(archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape, dtype and header length of member ``name`` (an ``.npy``), read from its header alone."""
    with archive.open(name) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(member)
        except (ValueError, TypeError, SyntaxError, EOFError) as exc:
            raise InvalidRequest(f"'{name}' is not an .npy array: {exc}", code="invalid_npz") from None
        return shape, dtype, member.tell()


def describe_npz(path: Path, max_array_bytes: int = MAX_NPZ_ARRAY_BYTES) -> dict[str, Any]:
    """Shapes of ``x`` and ``y`` in an ``.npz``, from the ``.npy`` headers; data is streamed, never loaded whole.

    Declared shapes, dtypes and sizes are checked before a byte of data is read: numeric dtypes only (no
    pickles), each member's size in the zip directory equal to what its header declares, and the arrays'
    total under ``max_array_bytes``. Then ``x`` is read in chunks to refuse NaN or infinite values.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = _npz_arrays(archive, max_array_bytes)
            (x_shape, x_dtype, x_header, _), (y_shape, _, _, _) = arrays["x"], arrays["y"]
            _check_npz_shapes(x_shape, y_shape)
            if x_dtype.kind == "f":
                _refuse_non_finite(archive, "x.npy", x_header, x_dtype)
    except (InvalidRequest, PayloadTooLarge):
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise InvalidRequest(f"not a readable .npz of numeric arrays: {exc}", code="invalid_npz") from None
    return {"rows": int(x_shape[0]), "x_shape": list(x_shape), "y_shape": list(y_shape), "x_dtype": str(x_dtype)}


def _npz_arrays(archive: zipfile.ZipFile, max_array_bytes: int) -> dict[str, NpyArray]:
    """Shape, dtype, header length and size of ``x`` and ``y``, from their headers: numeric, sized as the zip
    directory says, and together within ``max_array_bytes`` (413 ``npz_too_large``)."""
    members = {info.filename: info for info in archive.infolist()}
    if not {"x.npy", "y.npy"} <= set(members):
        names = sorted(name.removesuffix(".npy") for name in members)[:20]
        raise InvalidRequest("an .npz dataset needs arrays 'x' and 'y'", details={"arrays": names})
    arrays = {}
    for key in ("x", "y"):
        shape, dtype, header = _npy_header(archive, f"{key}.npy")
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.itemsize > 8:
            raise InvalidRequest("'x' and 'y' must be numeric arrays", code="invalid_npz")
        nbytes = math.prod(shape) * dtype.itemsize
        if members[f"{key}.npy"].file_size != header + nbytes:
            raise InvalidRequest(f"'{key}' is truncated or its header lies about its size", code="invalid_npz")
        arrays[key] = (shape, dtype, header, nbytes)
    total = sum(item[3] for item in arrays.values())
    if total > max_array_bytes:
        raise PayloadTooLarge(
            f"the arrays unpack to {total} bytes; at most {max_array_bytes}",
            code="npz_too_large",
            details={"uncompressed_bytes": total, "limit": max_array_bytes},
        )
    return arrays


def _check_npz_shapes(x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
    """Refuse ``x`` not (N, ...) with ``y`` (N,), and a dataset of no rows or rows of no values."""
    if len(x_shape) < 2 or len(y_shape) != 1 or x_shape[0] != y_shape[0]:
        raise InvalidRequest(
            "'x' must be (N, ...) and 'y' (N,) with the same N",
            details={"x_shape": list(x_shape), "y_shape": list(y_shape)},
        )
    if x_shape[0] == 0 or math.prod(x_shape[1:]) == 0:
        raise InvalidRequest("the .npz dataset has no rows (or rows of no values)", code="empty_dataset")


def _refuse_non_finite(archive: zipfile.ZipFile, name: str, header: int, dtype: np.dtype) -> None:
    """Stream member ``name`` in chunks (bounded memory) and refuse NaN or infinite values."""
    chunk = NPZ_CHUNK_BYTES - NPZ_CHUNK_BYTES % dtype.itemsize
    with archive.open(name) as member:
        member.read(header)
        while block := member.read(chunk):
            if not np.all(np.isfinite(np.frombuffer(block, dtype=dtype))):
                raise InvalidRequest("'x' contains NaN or infinite values")


def describe_csv(path: Path) -> dict[str, Any]:
    """Columns and row count of a UTF-8 CSV (see ``profile_csv``)."""
    return profile_csv(path)[0]


def profile_csv(path: Path, max_cell_bytes: int = MAX_CELL_BYTES) -> tuple[dict[str, Any], dict[str, Any]]:
    """Columns and row count of a UTF-8 CSV with a header, within bounded rows, columns and cells; in the same
    pass, each column's profile (bounded: counts and at most ``MAX_CATEGORIES`` + 1 value hashes) and the first
    rows."""
    csv.field_size_limit(MAX_CSV_FIELD)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = _csv_header(reader)
            profiles = [tabular.ColumnProfile(name.strip()) for name in header]
            rows, first = _profile_csv_rows(reader, profiles, max_cell_bytes)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidRequest(f"not a UTF-8 CSV file (or an .npz): {exc}") from None
    if rows == 0:
        raise InvalidRequest("the CSV dataset has no data rows")
    schema = [profile.summary() for profile in profiles]
    names = [profile.name for profile in profiles]
    return {"rows": rows, "columns": header}, {"schema": schema, "preview": tabular.preview(names, first)}


def _csv_header(reader: Iterator[list[str]]) -> list[str]:
    """A CSV's header row: at least two columns, at most ``MAX_CSV_COLUMNS``, unique names."""
    header = next(reader, None)
    if not header or len(header) < 2:
        raise InvalidRequest("a CSV dataset needs a header row with at least two columns")
    if len(header) > MAX_CSV_COLUMNS:
        raise InvalidRequest(f"a CSV dataset may have at most {MAX_CSV_COLUMNS} columns")
    if len(set(header)) != len(header):
        raise InvalidRequest("CSV column names must be unique")
    return header


def _profile_csv_rows(
    reader: Iterator[list[str]], profiles: list[tabular.ColumnProfile], max_cell_bytes: int
) -> tuple[int, list[list[str]]]:
    """Count a CSV's data rows into ``profiles`` in chunks; the rows (blank ones too) and the first rows."""
    width = len(profiles)
    chunk_rows = max(1, min(PROFILE_CHUNK_ROWS, PROFILE_CHUNK_CELLS // width))
    rows = 0
    first: list[list[str]] = []
    chunk: list[list[str]] = []
    for row in reader:
        if not row:
            continue
        rows += 1
        if len(row) != width:
            raise InvalidRequest(f"CSV row {rows + 1} has {len(row)} fields, the header {width}")
        if rows > MAX_CSV_ROWS:
            raise InvalidRequest(f"a CSV dataset may have at most {MAX_CSV_ROWS} rows")
        if all(not cell.strip() for cell in row):
            continue  # a blank line: the loaders skip it too
        chunk.append(row)
        if len(chunk) >= chunk_rows:
            _profile_rows(profiles, chunk, max_cell_bytes)
            chunk = []
        if len(first) < tabular.PREVIEW_ROWS:
            first.append(row)
    _profile_rows(profiles, chunk, max_cell_bytes)
    return rows, first


def _profile_rows(profiles: list[tabular.ColumnProfile], rows: list[list[str]], max_cell_bytes: int) -> None:
    """Count a chunk of rows into each column's profile; a cell over ``max_cell_bytes`` is 413 ``cell_too_large``."""
    if rows:
        tabular.add_columns(profiles, list(zip(*rows, strict=True)))
        for profile in profiles:
            if profile.longest > max_cell_bytes:
                raise tabular.cell_too_large(profile.name, profile.longest, max_cell_bytes)


def profile_parquet(
    path: Path, max_bytes: int, max_cell_bytes: int = MAX_CELL_BYTES
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Parquet table's rows and columns from its footer (limits checked before any data is read), then its
    columns' profiles and first rows, one batch at a time in Arrow, strings as dictionaries: each batch's rows,
    expanded bytes and longest cell are counted against the limits before it is profiled."""
    info = parquet.footer(path, MAX_CSV_ROWS, MAX_CSV_COLUMNS, max_bytes, max_cell_bytes)
    header = info["columns"]
    profiles = [tabular.ColumnProfile(name) for name in header]
    first: list[list[str]] = []
    for batch in parquet.arrow_batches(path, parquet.Limits(MAX_CSV_ROWS, max_bytes, max_cell_bytes)):
        for profile, column in zip(profiles, batch.columns, strict=True):
            profile.add_arrow(column)
        if len(first) < tabular.PREVIEW_ROWS:
            shown = parquet.cells(batch.slice(0, tabular.PREVIEW_ROWS - len(first)))
            first.extend([list(row) for row in zip(*shown, strict=True)])
    schema = [profile.summary() for profile in profiles]
    return info, {"schema": schema, "preview": tabular.preview(header, first)}
