"""Tenants and their API keys: salted hashes only, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.keycache import KeyCache, key_digest
from db.models import ApiKey, Tenant, utcnow
from db.records import Principal, aware, iso
from db.session import read_scope, rowcount, session_scope
from tensorq.core.errors import NotFound, Unauthorized

KEY_PREFIX = "tq"
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Every request reads its key (with the tenant's name): one Core select, built once.
KEY_BY_ID = (
    select(
        ApiKey.tenant_id,
        ApiKey.salt,
        ApiKey.secret_hash,
        ApiKey.read_only,
        ApiKey.revoked_at,
        ApiKey.last_used_at,
        Tenant.name.label("tenant_name"),
    )
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.id == bindparam("key_id"))
)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def split_key(key: str) -> tuple[str, str]:
    """Split ``tq_<key id>_<secret>`` into its id and secret; Unauthorized when malformed."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        raise Unauthorized("invalid API key")
    return parts[1], parts[2]


@dataclass(frozen=True)
class KeyInfo:
    """An API key's public facts (never its secret)."""

    id: str
    tenant: str
    read_only: bool
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class KeyStore:
    """Creates, checks, lists and revokes API keys."""

    def __init__(self, factory: sessionmaker[Session], cache_s: float = 0.0) -> None:
        self._factory = factory
        # Keys checked in the last ``cache_s`` (issue 26: one SELECT less per request); a revoke forgets its key.
        self.cache = KeyCache(cache_s)

    def ensure_tenant(self, name: str) -> str:
        """The id of the tenant called ``name``, created if new."""
        with session_scope(self._factory) as session:
            tenant = session.scalars(select(Tenant).where(Tenant.name == name)).first()
            if tenant is None:
                tenant = Tenant(id=str(uuid.uuid4()), name=name, created_at=utcnow())
                session.add(tenant)
            return tenant.id

    def create(self, tenant_name: str, *, read_only: bool = False) -> str:
        """Make a new key for the tenant and return it in full; this is the only time it is shown."""
        tenant_id = self.ensure_tenant(tenant_name)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        with session_scope(self._factory) as session:
            session.add(
                ApiKey(
                    id=key_id,
                    tenant_id=tenant_id,
                    salt=salt,
                    secret_hash=_hash(salt, secret),
                    read_only=read_only,
                    created_at=utcnow(),
                )
            )
        return f"{KEY_PREFIX}_{key_id}_{secret}"

    def authenticate(self, key: str) -> Principal:
        """The principal behind ``key``; Unauthorized when unknown, wrong or revoked. A key found good within the
        cache's time is not read again (``KeyCache``); a refused key is never remembered."""
        digest = key_digest(key)
        known = self.cache.get(digest)
        if known is not None:
            return known
        key_id, secret = split_key(key)
        with read_scope(self._factory) as connection:
            row = connection.execute(KEY_BY_ID, {"key_id": key_id}).one_or_none()
        expected = row.secret_hash if row is not None else _hash("x", "x")
        actual = _hash(row.salt if row is not None else "y", secret)
        if not hmac.compare_digest(expected, actual) or row is None or row.revoked_at is not None:
            raise Unauthorized("invalid API key")
        now = utcnow()
        last = aware(row.last_used_at)
        if last is None or last < now - LAST_USED_RESOLUTION:
            self._touch(key_id, now)
        principal = Principal(
            tenant_id=row.tenant_id, key_id=key_id, read_only=row.read_only, tenant_name=row.tenant_name
        )
        self.cache.put(digest, principal)
        return principal

    def _touch(self, key_id: str, now: datetime) -> None:
        """Record the key's use (at most once per ``LAST_USED_RESOLUTION``, whoever races)."""
        with session_scope(self._factory) as session:
            session.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == key_id,
                    or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
                )
                .values(last_used_at=now)
                .execution_options(synchronize_session=False)
            )

    def list(self) -> list[KeyInfo]:
        """Every key with its tenant, oldest first."""
        with session_scope(self._factory) as session:
            rows = session.execute(select(ApiKey, Tenant.name).join(Tenant).order_by(ApiKey.created_at)).all()
            return [
                KeyInfo(k.id, name, k.read_only, iso(k.created_at), iso(k.last_used_at), iso(k.revoked_at))
                for k, name in rows
            ]

    def tenant_name(self, tenant_id: str) -> str:
        """The name of a tenant by its id ('' when unknown)."""
        with session_scope(self._factory) as session:
            return session.scalar(select(Tenant.name).where(Tenant.id == tenant_id)) or ""

    def revoke(self, key_id: str) -> None:
        """Revoke a key by its id; NotFound when there is no such key."""
        with session_scope(self._factory) as session:
            changed = rowcount(
                session.execute(
                    update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow())
                )
            )
            if changed == 0 and session.get(ApiKey, key_id) is None:
                raise NotFound(f"API key {key_id} not found")
        self.cache.forget_key(key_id)
