"""Resumable dataset uploads of each tenant: the session rows (the parts themselves lie in the artifact store).

A session moves ``open -> completing -> completed`` by conditional UPDATEs (one completion at a time; a failed
one moves it back to ``open``); the reaper removes sessions past ``expires_at``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import UploadSession, utcnow
from db.records import aware
from db.session import rowcount, session_scope
from tensorq.core.errors import NotFound


@dataclass(frozen=True)
class UploadRecord:
    """An upload session."""

    id: str
    tenant_id: str
    name: str
    size_bytes: int
    chunk_bytes: int
    sha256: str | None
    mode: str
    location: str
    multipart_id: str | None
    status: str
    created_at: datetime
    expires_at: datetime

    @property
    def parts(self) -> int:
        """How many parts the upload has (at least one)."""
        return max(1, -(-self.size_bytes // self.chunk_bytes))

    def part_size(self, index: int) -> int:
        """The size part ``index`` (from 0) must have: ``chunk_bytes``, the last one the rest."""
        if index < self.parts - 1:
            return self.chunk_bytes
        return self.size_bytes - self.chunk_bytes * (self.parts - 1)


def _record(row: UploadSession) -> UploadRecord:
    return UploadRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        size_bytes=row.size_bytes,
        chunk_bytes=row.chunk_bytes,
        sha256=row.sha256,
        mode=row.mode,
        location=row.location,
        multipart_id=row.multipart_id,
        status=row.status,
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
    )


class UploadStore:
    """Upload sessions, scoped to a tenant."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def create(
        self,
        tenant_id: str,
        *,
        upload_id: str,
        name: str,
        size_bytes: int,
        chunk_bytes: int,
        sha256: str | None,
        mode: str,
        location: str,
        multipart_id: str | None,
        expires_s: float,
    ) -> UploadRecord:
        """Open a session that expires ``expires_s`` seconds from now."""
        now = utcnow()
        with session_scope(self._factory) as session:
            row = UploadSession(
                id=upload_id,
                tenant_id=tenant_id,
                name=name,
                size_bytes=size_bytes,
                chunk_bytes=chunk_bytes,
                sha256=sha256,
                mode=mode,
                location=location,
                multipart_id=multipart_id,
                status="open",
                created_at=now,
                expires_at=now + timedelta(seconds=expires_s),
            )
            session.add(row)
            session.flush()
            return _record(row)

    def get(self, tenant_id: str, upload_id: str) -> UploadRecord:
        """One of the tenant's sessions, or NotFound (another tenant's, or gone)."""
        with session_scope(self._factory) as session:
            row = session.get(UploadSession, upload_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"upload {upload_id} not found")
            return _record(row)

    def move(self, upload_id: str, before: str, after: str) -> bool:
        """Move the session from status ``before`` to ``after``; False when it was not in ``before``."""
        with session_scope(self._factory) as session:
            result = session.execute(
                update(UploadSession)
                .where(UploadSession.id == upload_id, UploadSession.status == before)
                .values(status=after)
            )
            return rowcount(result) == 1

    def remove(self, upload_id: str, status: str | None = None) -> bool:
        """Delete the session (only while in ``status`` when given); whether it was deleted."""
        with session_scope(self._factory) as session:
            query = delete(UploadSession).where(UploadSession.id == upload_id)
            if status is not None:
                query = query.where(UploadSession.status == status)
            return rowcount(session.execute(query)) == 1

    def expired(self, limit: int = 100) -> list[UploadRecord]:
        """Sessions past their expiry, oldest first."""
        with session_scope(self._factory) as session:
            rows = session.scalars(
                select(UploadSession)
                .where(UploadSession.expires_at < utcnow())
                .order_by(UploadSession.expires_at)
                .limit(limit)
            )
            return [_record(row) for row in rows]
