"""The model registry and dataset catalogue of each tenant."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Dataset, Model, ModelVersion, utcnow
from db.records import DatasetRecord, ModelRecord, ModelVersionRecord, aware
from db.session import lock_tenant, read_scope, session_scope
from tensorq.errors import InvalidRequest, NotFound, PayloadTooLarge

if TYPE_CHECKING:
    from db.jobs import ModelVersionDraft


# A model reference resolves on every predict and explain (at submit and in the worker): Core selects, built once.
_VERSION_COLUMNS = select(
    ModelVersion.id,
    ModelVersion.model_id,
    Model.name.label("model_name"),
    Model.tenant_id,
    ModelVersion.version,
    ModelVersion.training_job_id,
    ModelVersion.path,
    ModelVersion.architecture,
    ModelVersion.metrics,
    ModelVersion.signature,
    ModelVersion.created_at,
).join(Model, Model.id == ModelVersion.model_id)
_OF_MODEL = _VERSION_COLUMNS.where(Model.id == bindparam("model_id"), Model.tenant_id == bindparam("tenant_id"))
LATEST_VERSION = _OF_MODEL.order_by(ModelVersion.version.desc()).limit(1)
PINNED_VERSION = _OF_MODEL.where(ModelVersion.version == bindparam("version"))


def version_record(v: ModelVersion, m: Model) -> ModelVersionRecord:
    """The plain record of a model version row."""
    return ModelVersionRecord(
        id=v.id,
        model_id=m.id,
        model_name=m.name,
        tenant_id=m.tenant_id,
        version=v.version,
        training_job_id=v.training_job_id,
        path=v.path,
        architecture=v.architecture,
        metrics=v.metrics,
        signature=v.signature,
        created_at=aware(v.created_at),
    )


def insert_version(
    session: Session, tenant_id: str, job_id: str | None, draft: ModelVersionDraft
) -> ModelVersionRecord:
    """Add the next version of the tenant's model named ``draft.model_name`` (creating the model)."""
    model = session.scalars(select(Model).where(Model.tenant_id == tenant_id, Model.name == draft.model_name)).first()
    if model is None:
        model = Model(id=str(uuid.uuid4()), tenant_id=tenant_id, name=draft.model_name, created_at=utcnow())
        session.add(model)
    latest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)) or 0
    version = ModelVersion(
        id=str(uuid.uuid4()),
        model_id=model.id,
        version=latest + 1,
        training_job_id=job_id,
        path=draft.path,
        architecture=draft.architecture,
        metrics=draft.metrics,
        signature=draft.signature,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    return version_record(version, model)


VERSION = re.compile(r"[0-9]{1,9}")


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """Split ``"<id>[:<version>]"`` into the id and the version (None for the latest)."""
    model_id, _, version = ref.partition(":")
    if not model_id:
        raise InvalidRequest("model reference is empty", details={"model": ref})
    if not version:
        return model_id, None
    # ASCII digits only ("²".isdigit() is true) and at most 9 of them, so the number fits the INTEGER column.
    if not VERSION.fullmatch(version) or int(version) < 1:
        raise InvalidRequest("model version must be a positive integer below 10^9", details={"model": ref})
    return model_id, int(version)


class ModelRegistry:
    """Registered models and their versions, scoped to a tenant."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def register(self, tenant_id: str, draft: ModelVersionDraft, job_id: str | None = None) -> ModelVersionRecord:
        """Register a model version outside a job transition (bring-your-own models)."""
        with session_scope(self._factory) as session:
            return insert_version(session, tenant_id, job_id, draft)

    def list(self, tenant_id: str) -> list[ModelRecord]:
        """The tenant's models, newest first, each with its versions."""
        with session_scope(self._factory) as session:
            models = list(
                session.scalars(select(Model).where(Model.tenant_id == tenant_id).order_by(Model.created_at.desc()))
            )
            return [self._record(session, m) for m in models]

    def get(self, tenant_id: str, model_id: str) -> ModelRecord:
        """One of the tenant's models, or NotFound."""
        with session_scope(self._factory) as session:
            model = session.get(Model, model_id)
            if model is None or model.tenant_id != tenant_id:
                raise NotFound(f"model {model_id} not found")
            return self._record(session, model)

    def resolve(self, tenant_id: str, ref: str) -> ModelVersionRecord:
        """The version that ``"<id>[:<version>]"`` names (the latest when no version), or NotFound."""
        model_id, version = parse_model_ref(ref)
        params: dict[str, Any] = {"model_id": model_id, "tenant_id": tenant_id}
        if version is not None:
            params["version"] = version
        with read_scope(self._factory) as connection:
            row = connection.execute(LATEST_VERSION if version is None else PINNED_VERSION, params).one_or_none()
        if row is not None:
            return ModelVersionRecord(**{**row._asdict(), "created_at": aware(row.created_at)})
        self.get(tenant_id, model_id)  # NotFound when the model is not the tenant's
        if version is None:
            raise NotFound(f"model {model_id} has no versions")
        raise NotFound(f"model {model_id} has no version {version}")

    def _record(self, session: Session, model: Model) -> ModelRecord:
        versions = session.scalars(
            select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version)
        )
        return ModelRecord(
            id=model.id,
            tenant_id=model.tenant_id,
            name=model.name,
            created_at=aware(model.created_at),
            versions=[version_record(v, model) for v in versions],
        )


def dataset_record(row: Dataset) -> DatasetRecord:
    """The plain record of a dataset row."""
    return DatasetRecord(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        format=row.format,
        path=row.path,
        size_bytes=row.size_bytes,
        info=row.info,
        created_at=aware(row.created_at),
    )


class DatasetCatalog:
    """Uploaded datasets, scoped to a tenant."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def add(
        self,
        tenant_id: str,
        *,
        dataset_id: str,
        name: str,
        fmt: str,
        path: str,
        size_bytes: int,
        info: dict[str, Any],
        limit_bytes: int | None = None,
    ) -> DatasetRecord:
        """Record an upload already written to ``path``; with ``limit_bytes`` the tenant's stored bytes are
        summed and the row inserted under the tenant's row lock, and going over is a 413 ``storage_quota_exceeded``."""
        with session_scope(self._factory) as session:
            if limit_bytes is not None:
                lock_tenant(session.connection(), tenant_id)
                used = session.scalar(
                    select(func.coalesce(func.sum(Dataset.size_bytes), 0)).where(Dataset.tenant_id == tenant_id)
                )
                if used + size_bytes > limit_bytes:
                    raise PayloadTooLarge(
                        "the upload would exceed the tenant's dataset storage quota",
                        code="storage_quota_exceeded",
                        details={"quota": "quota_dataset_bytes", "limit": limit_bytes, "used": int(used)},
                    )
            row = Dataset(
                id=dataset_id,
                tenant_id=tenant_id,
                name=name,
                format=fmt,
                path=path,
                size_bytes=size_bytes,
                info=info,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return dataset_record(row)

    def list(self, tenant_id: str) -> list[DatasetRecord]:
        """The tenant's datasets, newest first."""
        with session_scope(self._factory) as session:
            rows = session.scalars(
                select(Dataset).where(Dataset.tenant_id == tenant_id).order_by(Dataset.created_at.desc())
            )
            return [dataset_record(r) for r in rows]

    def get(self, tenant_id: str, dataset_id: str) -> DatasetRecord:
        """One of the tenant's datasets, or NotFound."""
        with session_scope(self._factory) as session:
            row = session.get(Dataset, dataset_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"dataset {dataset_id} not found")
            return dataset_record(row)
