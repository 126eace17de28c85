"""The model registry and dataset catalogue of each tenant."""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Dataset, Job, Model, ModelAlias, ModelEvent, ModelVersion, utcnow
from db.records import DatasetRecord, ModelEventRecord, ModelRecord, ModelVersionDraft, ModelVersionRecord, aware
from db.session import lock_tenant, read_scope, session_scope
from tensorq.core.errors import Conflict, InvalidRequest, NotFound, PayloadTooLarge

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
    ModelVersion.lineage,
).join(Model, Model.id == ModelVersion.model_id)
# A model by its id or, failing that, its name (an id wins over a name that looks like one).
MODEL_BY_ID_OR_NAME = (
    select(Model.id, Model.name)
    .where(
        Model.tenant_id == bindparam("tenant_id"),
        or_(Model.id == bindparam("ref"), Model.name == bindparam("ref")),
    )
    .order_by(case((Model.id == bindparam("ref"), 0), else_=1))
    .limit(1)
)
# The version statements find the model themselves (one statement per resolve); only a miss reads the model
# again, to say whether the model or its version is missing.
_MODEL_ID = MODEL_BY_ID_OR_NAME.with_only_columns(Model.id).correlate(None).scalar_subquery()
_OF_MODEL = _VERSION_COLUMNS.where(Model.id == _MODEL_ID)
LATEST_VERSION = _OF_MODEL.order_by(ModelVersion.version.desc()).limit(1)
PINNED_VERSION = _OF_MODEL.where(ModelVersion.version == bindparam("version"))
ALIASED_VERSION = _OF_MODEL.join(ModelAlias, ModelAlias.version_id == ModelVersion.id).where(
    ModelAlias.alias == bindparam("alias")
)
IN_FLIGHT = ("queued", "running")


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
        lineage=v.lineage,
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
        lineage=draft.lineage,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    return version_record(version, model)


VERSION = re.compile(r"[0-9]{1,9}")
ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: a model (id or name) and at most one of a version or an alias."""

    model: str
    version: int | None = None
    alias: str | None = None

    @property
    def pinned(self) -> bool:
        """Whether the reference names one version (by number or alias) rather than the latest."""
        return self.version is not None or self.alias is not None


def parse_model_ref(ref: str) -> ModelRef:
    """Split ``"<id or name>[:<version>|@<alias>]"``; InvalidRequest when a part is malformed."""
    if "@" in ref:
        model, _, alias = ref.rpartition("@")
        if not model or not ALIAS.fullmatch(alias):
            raise InvalidRequest(
                "a model alias is a letter then up to 63 letters, digits, '_' or '-'", details={"model": ref}
            )
        return ModelRef(model, alias=alias)
    model, _, version = ref.partition(":")
    if not model:
        raise InvalidRequest("model reference is empty", details={"model": ref})
    if not version:
        return ModelRef(model)
    # ASCII digits only ("²".isdigit() is true) and at most 9 of them, so the number fits the INTEGER column.
    if not VERSION.fullmatch(version) or int(version) < 1:
        raise InvalidRequest("model version must be a positive integer below 10^9", details={"model": ref})
    return ModelRef(model, version=int(version))


def check_alias(alias: str) -> str:
    """``alias`` when it is a valid alias name, else InvalidRequest."""
    if not ALIAS.fullmatch(alias):
        raise InvalidRequest(
            "a model alias is a letter then up to 63 letters, digits, '_' or '-'", details={"alias": alias}
        )
    return alias


def in_flight_specs(session: Session, tenant_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(id, type, spec)`` of the tenant's queued and running jobs (bounded by its quotas)."""
    rows = session.execute(
        select(Job.id, Job.type, Job.spec).where(Job.tenant_id == tenant_id, Job.status.in_(IN_FLIGHT))
    )
    return [(row.id, row.type, row.spec or {}) for row in rows]


def resolve_on(connection: Connection, tenant_id: str, parsed: ModelRef) -> ModelVersionRecord:
    """The version ``parsed`` names among the tenant's models, read on ``connection``; NotFound otherwise."""
    params: dict[str, Any] = {"tenant_id": tenant_id, "ref": parsed.model}
    if parsed.version is not None:
        row = connection.execute(PINNED_VERSION, {**params, "version": parsed.version}).one_or_none()
    elif parsed.alias is not None:
        row = connection.execute(ALIASED_VERSION, {**params, "alias": parsed.alias}).one_or_none()
    else:
        row = connection.execute(LATEST_VERSION, params).one_or_none()
    if row is not None:
        return ModelVersionRecord(**{**row._asdict(), "created_at": aware(row.created_at)})
    if connection.execute(MODEL_BY_ID_OR_NAME, params).one_or_none() is None:
        raise NotFound(f"model {parsed.model} not found")
    if parsed.version is not None:
        raise NotFound(f"model {parsed.model} has no version {parsed.version}")
    if parsed.alias is not None:
        raise NotFound(f"model {parsed.model} has no alias {parsed.alias}")
    raise NotFound(f"model {parsed.model} has no versions")


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

    def get(self, tenant_id: str, ref: str) -> ModelRecord:
        """One of the tenant's models by id or name (a version or alias in ``ref`` must exist), or NotFound."""
        parsed = parse_model_ref(ref)
        if parsed.pinned:
            self.resolve(tenant_id, ref)
        with session_scope(self._factory) as session:
            return self._record(session, self._model(session, tenant_id, parsed.model))

    def resolve(self, tenant_id: str, ref: str) -> ModelVersionRecord:
        """The version that ``"<id or name>[:<version>|@<alias>]"`` names (the latest when neither), or NotFound."""
        parsed = parse_model_ref(ref)
        with read_scope(self._factory) as connection:
            return resolve_on(connection, tenant_id, parsed)

    def set_alias(self, tenant_id: str, ref: str, alias: str, version: int, key_id: str | None) -> ModelRecord:
        """Point ``alias`` of the model at ``version`` (creating or moving it) and record the change."""
        check_alias(alias)
        with session_scope(self._factory) as session:
            lock_tenant(session.connection(), tenant_id)
            model = self._model(session, tenant_id, self._plain(ref))
            target = session.scalars(
                select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version)
            ).first()
            if target is None:
                raise InvalidRequest(
                    f"model {model.name} has no version {version}",
                    code="unknown_version",
                    details={"versions": self._numbers(session, model.id)},
                )
            row = session.scalars(
                select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
            ).first()
            previous = None
            if row is None:
                session.add(
                    ModelAlias(
                        id=str(uuid.uuid4()), model_id=model.id, alias=alias, version_id=target.id, updated_at=utcnow()
                    )
                )
            else:
                previous = session.scalar(select(ModelVersion.version).where(ModelVersion.id == row.version_id))
                row.version_id, row.updated_at = target.id, utcnow()
            data = {"alias": alias, "from_version": previous, "to_version": version}
            self._audit(session, model, "alias_set", data, key_id)
            session.flush()
            return self._record(session, model)

    def delete_alias(self, tenant_id: str, ref: str, alias: str, key_id: str | None) -> None:
        """Remove ``alias`` from the model and record it; NotFound when the model has no such alias."""
        check_alias(alias)
        with session_scope(self._factory) as session:
            lock_tenant(session.connection(), tenant_id)
            model = self._model(session, tenant_id, self._plain(ref))
            row = session.scalars(
                select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
            ).first()
            if row is None:
                raise NotFound(f"model {model.name} has no alias {alias}")
            previous = session.scalar(select(ModelVersion.version).where(ModelVersion.id == row.version_id))
            session.delete(row)
            self._audit(session, model, "alias_deleted", {"alias": alias, "from_version": previous}, key_id)

    def events(self, tenant_id: str, ref: str) -> builtins.list[ModelEventRecord]:
        """The model's registry history (alias moves, deletions), oldest first."""
        with session_scope(self._factory) as session:
            model = self._model(session, tenant_id, self._plain(ref))
            rows = session.scalars(
                select(ModelEvent)
                .where(ModelEvent.tenant_id == tenant_id, ModelEvent.model_id == model.id)
                .order_by(ModelEvent.id)
            )
            return [
                ModelEventRecord(
                    seq=r.id,
                    model_id=r.model_id,
                    model_name=r.model_name,
                    kind=r.kind,
                    data=r.data,
                    key_id=r.key_id,
                    created_at=aware(r.created_at),
                )
                for r in rows
            ]

    def delete(self, tenant_id: str, ref: str, key_id: str | None) -> builtins.list[ModelVersionRecord]:
        """Delete a model (``ref`` without a version) or one version (``name:3``, ``name@production``); the
        deleted versions are returned so that the caller removes their files. Conflict while a queued or
        running predict or explain job refers to what would go."""
        parsed = parse_model_ref(ref)
        with session_scope(self._factory) as session:
            lock_tenant(session.connection(), tenant_id)
            model = self._model(session, tenant_id, parsed.model)
            versions = list(
                session.scalars(
                    select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version)
                )
            )
            doomed = versions
            connection = session.connection()
            if parsed.pinned:
                target = resolve_on(connection, tenant_id, parsed)
                doomed = [v for v in versions if v.id == target.id]
            doomed_ids = {v.id for v in doomed}
            users = []
            for job_id, job_type, spec in in_flight_specs(session, tenant_id):
                if job_type not in ("predict", "explain") or not isinstance(spec.get("model"), str):
                    continue
                try:
                    used = resolve_on(connection, tenant_id, parse_model_ref(spec["model"]))
                except (NotFound, InvalidRequest):
                    continue
                if used.id in doomed_ids:
                    users.append(job_id)
            if users:
                raise Conflict(
                    "a queued or running job still uses this model", code="model_in_use", details={"jobs": users}
                )
            records = [version_record(v, model) for v in doomed]
            if parsed.pinned:
                for v in doomed:
                    session.delete(v)
                data: dict[str, Any] = {"versions": [r.version for r in records]}
                self._audit(session, model, "version_deleted", data, key_id)
            else:
                self._audit(session, model, "model_deleted", {"versions": [r.version for r in records]}, key_id)
                session.delete(model)
            return records

    def paths_in_use(self, paths: Collection[str]) -> set[str]:
        """Those of ``paths`` that a version still holds (a tune's best model shares its trial's file)."""
        if not paths:
            return set()
        with read_scope(self._factory) as conn:
            return set(conn.execute(select(ModelVersion.path).where(ModelVersion.path.in_(sorted(paths)))).scalars())

    @staticmethod
    def _plain(ref: str) -> str:
        """The model part of ``ref``; InvalidRequest when it names a version or alias (a model is meant)."""
        parsed = parse_model_ref(ref)
        if parsed.pinned:
            raise InvalidRequest("name the model (its id or name), not one of its versions", details={"model": ref})
        return parsed.model

    @staticmethod
    def _model(session: Session, tenant_id: str, name_or_id: str) -> Model:
        model_id = session.execute(MODEL_BY_ID_OR_NAME, {"tenant_id": tenant_id, "ref": name_or_id}).scalar()
        model = session.get(Model, model_id) if model_id else None
        if model is None:
            raise NotFound(f"model {name_or_id} not found")
        return model

    @staticmethod
    def _numbers(session: Session, model_id: str) -> builtins.list[int]:
        return list(
            session.scalars(
                select(ModelVersion.version).where(ModelVersion.model_id == model_id).order_by(ModelVersion.version)
            )
        )

    @staticmethod
    def _audit(session: Session, model: Model, kind: str, data: dict[str, Any], key_id: str | None) -> None:
        session.add(
            ModelEvent(
                tenant_id=model.tenant_id,
                model_id=model.id,
                model_name=model.name,
                kind=kind,
                data=data,
                key_id=key_id,
                created_at=utcnow(),
            )
        )

    def _record(self, session: Session, model: Model) -> ModelRecord:
        versions = list(
            session.scalars(
                select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version)
            )
        )
        numbers = {v.id: v.version for v in versions}
        aliases = {
            a.alias: numbers[a.version_id]
            for a in session.scalars(select(ModelAlias).where(ModelAlias.model_id == model.id))
            if a.version_id in numbers
        }
        return ModelRecord(
            id=model.id,
            tenant_id=model.tenant_id,
            name=model.name,
            created_at=aware(model.created_at),
            versions=[version_record(v, model) for v in versions],
            aliases=aliases,
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
        profile=row.profile,
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
        profile: dict[str, Any] | None = None,
    ) -> DatasetRecord:
        """Record an upload already written to ``path``; with ``limit_bytes`` the tenant's stored bytes are
        summed and the row inserted under the tenant's row lock, and going over is a 413 ``storage_quota_exceeded``."""
        with session_scope(self._factory) as session:
            if limit_bytes is not None:
                lock_tenant(session.connection(), tenant_id)
                used = session.scalar(select(func.sum(Dataset.size_bytes)).where(Dataset.tenant_id == tenant_id)) or 0
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
                profile=profile,
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

    def delete(self, tenant_id: str, dataset_id: str) -> DatasetRecord:
        """Delete one of the tenant's datasets (the caller removes its file); Conflict while a queued or running
        job reads it."""
        with session_scope(self._factory) as session:
            lock_tenant(session.connection(), tenant_id)
            row = session.get(Dataset, dataset_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"dataset {dataset_id} not found")
            users = [job_id for job_id, _, spec in in_flight_specs(session, tenant_id) if spec.get("dataset") == row.id]
            if users:
                raise Conflict(
                    "a queued or running job still reads this dataset", code="dataset_in_use", details={"jobs": users}
                )
            record = dataset_record(row)
            session.delete(row)
            return record
