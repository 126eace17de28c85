"""Model references: the latest or a pinned version, per tenant, with NotFound for anything else."""

from __future__ import annotations

import pytest

from db.database import Database
from db.jobs import ModelVersionDraft
from tensorq.errors import InvalidRequest, NotFound


def _register(db: Database, tenant: str, name: str, path: str) -> str:
    draft = ModelVersionDraft(model_name=name, path=path, architecture="mlp", metrics={}, signature={})
    return db.models.register(db.keys.ensure_tenant(tenant), draft).model_id


def test_a_reference_resolves_to_the_latest_or_the_pinned_version(db: Database) -> None:
    model_id = _register(db, "acme", "iris", "/v1.keras")
    for path in ("/v2.keras", "/v3.keras"):
        assert _register(db, "acme", "iris", path) == model_id
    tenant = db.keys.ensure_tenant("acme")
    latest = db.models.resolve(tenant, model_id)
    assert (latest.version, latest.path, latest.model_name) == (3, "/v3.keras", "iris")
    assert db.models.resolve(tenant, f"{model_id}:1").path == "/v1.keras"


def test_unknown_versions_models_and_other_tenants_models_are_not_found(db: Database) -> None:
    model_id = _register(db, "acme", "iris", "/v1.keras")
    with pytest.raises(NotFound, match="no version 2"):
        db.models.resolve(db.keys.ensure_tenant("acme"), f"{model_id}:2")
    with pytest.raises(NotFound, match="not found"):
        db.models.resolve(db.keys.ensure_tenant("acme"), "no-such-model")
    with pytest.raises(NotFound, match="not found"):
        db.models.resolve(db.keys.ensure_tenant("globex"), model_id)
    with pytest.raises(InvalidRequest):
        db.models.resolve(db.keys.ensure_tenant("acme"), f"{model_id}:zero")
