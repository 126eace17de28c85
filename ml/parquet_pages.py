"""A Parquet file's page headers, read without decoding a page: what each page declares it unpacks to.

The footer's sizes are the writer's word and count a dictionary page once however many rows use it; the page
headers are what a reader decompresses by. This reads them (Thrift's compact protocol, the fields it needs,
the others skipped) so that a page's real size is known before Arrow allocates it."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensorq.core.errors import InvalidRequest

DICTIONARY_PAGE = 2
MAX_HEADER_BYTES = 1024 * 1024  # a page header's Thrift bytes (its statistics included) at most
MAX_PAGES = 200_000  # pages in a file at most: each costs a header read here (tens of microseconds)

# Compact protocol types.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
_FIXED = {_BYTE: 1, _DOUBLE: 8}  # the types of a fixed width, in bytes


def _invalid(why: str) -> InvalidRequest:
    """The error of a page header that does not read."""
    return InvalidRequest(f"not a readable Parquet file: {why}", code="invalid_parquet")


@dataclass(frozen=True)
class Page:
    """One page's header: its type, the bytes it unpacks to and is stored in, and a dictionary's entries."""

    column: str
    kind: int
    uncompressed: int
    compressed: int
    entries: int | None  # a dictionary page's num_values


class _Compact:
    """Thrift's compact protocol over the file's bytes from ``offset``, at most ``limit`` of them."""

    def __init__(self, data: Any, offset: int, limit: int = MAX_HEADER_BYTES) -> None:
        self.data, self.pos = data, offset
        self.end = min(len(data), offset + limit)

    def _byte(self) -> int:
        if self.pos >= self.end:
            raise _invalid("Thrift metadata runs past the end of the file or its size limit")
        self.pos += 1
        return int(self.data[self.pos - 1])

    def _skip_bytes(self, count: int) -> None:
        if count < 0 or self.pos + count > self.end:
            raise _invalid("Thrift metadata runs past the end of the file or its size limit")
        self.pos += count

    def varint(self) -> int:
        """An unsigned LEB128 integer."""
        data, pos, shift, result = self.data, self.pos, 0, 0
        while pos < self.end and shift <= 63:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                self.pos = pos
                return int(result)
            shift += 7
        raise _invalid("a varint runs past the page header's end or 64 bits")

    def integer(self) -> int:
        """A zigzag-encoded signed integer (i16, i32, i64)."""
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def fields(self) -> Iterator[tuple[int, int]]:
        """A struct's (field id, type) pairs up to its stop; the caller reads or skips each value."""
        last = 0
        while True:
            head = self._byte()
            kind, delta = head & 0x0F, head >> 4
            if kind == 0:
                return
            last = last + delta if delta else self.integer()
            yield last, kind

    def skip(self, kind: int, depth: int = 0) -> None:
        """Skip a value of compact type ``kind``."""
        if depth > 32:
            raise _invalid("Thrift metadata nested too deep")
        if kind in (_TRUE, _FALSE):
            return
        if kind in _FIXED:
            self._skip_bytes(_FIXED[kind])
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _BINARY:
            self._skip_bytes(self.varint())
        elif kind in (_LIST, _SET):
            self._skip_list(depth)
        elif kind == _MAP:
            self._skip_map(depth)
        elif kind == _STRUCT:
            for _, inner in self.fields():
                self.skip(inner, depth + 1)
        else:
            raise _invalid(f"unknown Thrift type {kind}")

    def list_header(self) -> tuple[int, int]:
        """A list's (size, element type)."""
        head = self._byte()
        size, inner = head >> 4, head & 0x0F
        return (self.varint() if size == 15 else size), inner

    def binary(self) -> bytes:
        """A binary (or string) value."""
        size = self.varint()
        start = self.pos
        self._skip_bytes(size)
        return bytes(self.data[start : self.pos])

    def _skip_list(self, depth: int) -> None:
        size, inner = self.list_header()
        for _ in range(size):
            self.skip(_BYTE if inner in (_TRUE, _FALSE) else inner, depth + 1)

    def _skip_map(self, depth: int) -> None:
        size = self.varint()
        if size:
            types = self._byte()
            for _ in range(size):
                self.skip(types >> 4, depth + 1)
                self.skip(types & 0x0F, depth + 1)


def _header(data: Any, offset: int, column: str) -> tuple[Page, int]:
    """The page header at ``offset`` and its length in bytes."""
    reader = _Compact(data, offset)
    values: dict[int, int] = {}
    entries = None
    for field, kind in reader.fields():
        if field in (1, 2, 3) and kind == _I32:
            values[field] = reader.integer()
        elif field == 7 and kind == _STRUCT:  # DictionaryPageHeader: field 1 is num_values
            for inner, inner_kind in reader.fields():
                if inner == 1 and inner_kind == _I32:
                    entries = reader.integer()
                else:
                    reader.skip(inner_kind)
        else:
            reader.skip(kind)
    if not {1, 2, 3} <= set(values) or values[2] < 0 or values[3] < 0 or (entries is not None and entries < 0):
        raise _invalid(f"a page header of column '{column[:200]}' lacks its sizes")
    return Page(column, values[1], values[2], values[3], entries), reader.pos - offset


@dataclass(frozen=True)
class Chunk:
    """Where one column chunk's pages lie: its column's dotted path and its byte range in the file."""

    column: str
    start: int
    end: int


def _column_meta(reader: _Compact) -> Chunk:
    """A ColumnMetaData struct's path (field 3), compressed size (7) and page offsets (9, data; 11, dictionary)."""
    path, values = "", {}
    for field, kind in reader.fields():
        if field == 3 and kind == _LIST:
            size, _ = reader.list_header()
            path = ".".join(reader.binary().decode("utf-8", "replace") for _ in range(size))
        elif field in (7, 9, 11) and kind == _I64:
            values[field] = reader.integer()
        else:
            reader.skip(kind)
    if 7 not in values or 9 not in values:
        raise _invalid(f"column '{path[:200]}' has no page offsets")
    start = min(values[9], values.get(11) or values[9])
    return Chunk(path, start, start + values[7])


def _struct_list(reader: _Compact) -> Iterator[None]:
    """Step through a list of structs: the caller reads each struct's fields at each step."""
    size, inner = reader.list_header()
    if size and inner != _STRUCT:
        raise _invalid("a Parquet footer's list of structs holds something else")
    for _ in range(size):
        yield None


def _chunks(reader: _Compact) -> Iterator[Chunk]:
    """Each row group's column chunks (FileMetaData field 4, RowGroup field 1, ColumnChunk field 3)."""
    for field, kind in reader.fields():
        if field != 4 or kind != _LIST:
            reader.skip(kind)
            continue
        for _ in _struct_list(reader):
            for group_field, group_kind in reader.fields():
                if group_field != 1 or group_kind != _LIST:
                    reader.skip(group_kind)
                    continue
                for _ in _struct_list(reader):
                    for chunk_field, chunk_kind in reader.fields():
                        if chunk_field == 3 and chunk_kind == _STRUCT:
                            yield _column_meta(reader)
                        else:
                            reader.skip(chunk_kind)


def column_chunks(data: Any) -> list[Chunk]:
    """The file's column chunks, read from its footer here rather than through ``pyarrow``'s metadata objects
    (a corrupt statistics field there can abort the process instead of raising)."""
    length = int.from_bytes(data[-8:-4], "little")
    if length <= 0 or length > len(data) - 12:
        raise _invalid("the footer's length is out of range")
    return list(_chunks(_Compact(data, len(data) - 8 - length, length)))


def pages(path: Path) -> Iterator[Page]:
    """Every page header of every column chunk, in file order per chunk (at most ``MAX_PAGES``)."""
    count = 0
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for chunk in column_chunks(data):
            start = chunk.start
            if start < 4 or chunk.end > len(data) - 8:
                raise _invalid(f"column '{chunk.column[:200]}' lies outside the file")
            while start < chunk.end:
                page, length = _header(data, start, chunk.column)
                count += 1
                if count > MAX_PAGES:
                    raise _invalid(f"more than {MAX_PAGES} pages")
                yield page
                start += length + page.compressed
