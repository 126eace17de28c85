"""Datasets by reference: which URLs a tenant may register (the operator's allow-list, checked before anything is
fetched), and the shards a URL names (one Parquet or CSV file, a folder of them, or a glob such as
``s3://lake/events/*.parquet``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tensorq.core.errors import Forbidden, InvalidRequest
from tensorq.core.settings import Settings
from tensorq.core.store import filesystem, reaching

SCHEMES = ("s3", "file")
FORMATS = {".parquet": "parquet", ".csv": "csv"}
MAX_SHARDS = 10_000
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Shard:
    """One file of a dataset by reference: its URL and size in bytes."""

    url: str
    size: int


@dataclass(frozen=True)
class Reference:
    """The shards a dataset URL names, in name order, all of one format."""

    url: str
    format: str
    shards: list[Shard]

    @property
    def size_bytes(self) -> int:
        """The shards' bytes together."""
        return sum(s.size for s in self.shards)


def _forbidden(message: str, prefixes: list[str]) -> Forbidden:
    return Forbidden(message, code="dataset_url_forbidden", details={"allowed_prefixes": prefixes})


def _under(url: str, prefix: str) -> bool:
    """Whether ``url`` is ``prefix`` or lies in it (a folder boundary: ``s3://b/ev`` does not allow ``s3://b/evil``)."""
    return url == prefix or url.startswith(prefix if prefix.endswith("/") else prefix + "/")


def check_allowed(url: str, prefixes: list[str]) -> str:
    """``url`` when its scheme is one TensorQ reads and it lies under one of ``prefixes``; else a 403
    ``dataset_url_forbidden`` (nothing is fetched)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise _forbidden(
            f"dataset URLs are {' or '.join(s + '://' for s in SCHEMES)} under an allowed prefix", prefixes
        )
    if ".." in url.split("/") or any(c in url for c in "\\#\x00"):
        raise _forbidden("the dataset URL is not a plain path", prefixes)
    if not any(_under(url, p) for p in prefixes):
        raise _forbidden("the dataset URL is not under a prefix this tenant may read", prefixes)
    return url


def _found(fs: Any, path: str) -> dict[str, dict[str, Any]]:
    """The files at ``path``: a glob's matches, a folder's files, or the one file."""
    if GLOB_CHARS & set(path):
        return dict(fs.glob(path, detail=True))
    info = fs.info(path)
    if info.get("type") == "directory":
        return dict(fs.find(path, detail=True))
    return {path: info}


def resolve(url: str, prefixes: list[str], settings: Settings) -> Reference:
    """The shards ``url`` names (checked against ``prefixes`` first, and each shard again): InvalidRequest when
    it names nothing, too many files, or files of several formats."""
    check_allowed(url, prefixes)
    fs, path, faults = filesystem(url, settings)
    try:
        with reaching(faults):
            found = _found(fs, path)
    except FileNotFoundError:
        raise InvalidRequest("nothing is stored at the dataset URL", code="dataset_url_empty") from None
    shards = []
    for name, info in sorted(found.items()):
        suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if info.get("type", "file") != "file" or suffix not in FORMATS:
            continue
        shard_url = fs.unstrip_protocol(name)
        if not any(_under(shard_url, p) for p in prefixes):
            continue
        shards.append(Shard(shard_url, int(info.get("size") or 0)))
    if not shards:
        raise InvalidRequest("no .parquet or .csv file at the dataset URL", code="dataset_url_empty")
    if len(shards) > MAX_SHARDS:
        raise InvalidRequest(f"a dataset has at most {MAX_SHARDS} shards", code="too_many_shards")
    formats = {FORMATS["." + s.url.rsplit(".", 1)[-1].lower()] for s in shards}
    if len(formats) > 1:
        raise InvalidRequest("a dataset's shards are all Parquet or all CSV", code="mixed_formats")
    return Reference(url, formats.pop(), shards)


def shard_name(shard: Shard) -> str:
    """How a message names a shard: its file name (no bucket, folder or credential)."""
    return shard.url.rsplit("/", 1)[-1]


def corrupt(shard: Shard) -> InvalidRequest:
    """The error of a shard that cannot be read as its format: it names the shard's file."""
    name = shard_name(shard)
    return InvalidRequest(f"shard {name} is corrupt or truncated", code="corrupt_shard", details={"shard": name})
