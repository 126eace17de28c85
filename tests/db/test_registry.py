"""Model references: the latest, a pinned version or an alias, by id or name, per tenant; aliases, their audit,
and deletes refused while a job uses a version."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from db.database import Database
from db.jobs import ModelVersionDraft, NewJob
from tensorq.core.errors import Conflict, InvalidRequest, NotFound


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


def test_names_versions_and_aliases_resolve_per_tenant(db: Database) -> None:
    model_id = _register(db, "acme", "churn", "/v1.keras")
    _register(db, "acme", "churn", "/v2.keras")
    _register(db, "globex", "churn", "/theirs.keras")
    acme = db.keys.ensure_tenant("acme")
    assert db.models.resolve(acme, "churn").path == "/v2.keras"
    assert db.models.resolve(acme, "churn:1").path == "/v1.keras"
    assert db.models.resolve(acme, f"{model_id}:2").path == "/v2.keras"
    with pytest.raises(NotFound, match="no alias production"):
        db.models.resolve(acme, "churn@production")
    model = db.models.set_alias(acme, "churn", "production", 1, key_id="k1")
    assert model.aliases == {"production": 1}
    assert db.models.resolve(acme, "churn@production").path == "/v1.keras"
    db.models.set_alias(acme, model_id, "production", 2, key_id="k2")
    assert db.models.resolve(acme, "churn@production").path == "/v2.keras"
    assert db.models.resolve(db.keys.ensure_tenant("globex"), "churn").path == "/theirs.keras"
    with pytest.raises(NotFound):
        db.models.resolve(db.keys.ensure_tenant("globex"), "churn@production")
    db.models.delete_alias(acme, "churn", "production", key_id="k3")
    with pytest.raises(NotFound, match="no alias"):
        db.models.resolve(acme, "churn@production")
    events = db.models.events(acme, "churn")
    assert [(e.kind, e.data, e.key_id) for e in events] == [
        ("alias_set", {"alias": "production", "from_version": None, "to_version": 1}, "k1"),
        ("alias_set", {"alias": "production", "from_version": 1, "to_version": 2}, "k2"),
        ("alias_deleted", {"alias": "production", "from_version": 2}, "k3"),
    ]
    with pytest.raises(InvalidRequest, match="no version 9"):
        db.models.set_alias(acme, "churn", "staging", 9, key_id=None)
    with pytest.raises(InvalidRequest):
        db.models.set_alias(acme, "churn", "not an alias", 1, key_id=None)
    with pytest.raises(InvalidRequest):
        db.models.set_alias(acme, "churn:1", "staging", 1, key_id=None)


def test_aliases_survive_a_new_database_object(settings, db: Database) -> None:  # type: ignore[no-untyped-def]
    _register(db, "acme", "churn", "/v1.keras")
    acme = db.keys.ensure_tenant("acme")
    db.models.set_alias(acme, "churn", "production", 1, key_id=None)
    db.dispose()
    again = Database(settings)
    try:
        assert again.models.resolve(acme, "churn@production").path == "/v1.keras"
    finally:
        again.dispose()


def test_a_version_in_use_by_a_queued_job_cannot_be_deleted(db: Database) -> None:
    _register(db, "acme", "churn", "/v1.keras")
    _register(db, "acme", "churn", "/v2.keras")
    acme = db.keys.ensure_tenant("acme")
    db.models.set_alias(acme, "churn", "production", 1, key_id=None)
    queued = db.jobs.submit(NewJob(tenant_id=acme, type="predict", spec={"model": "churn@production", "inputs": [[1]]}))
    with pytest.raises(Conflict) as caught:
        db.models.delete(acme, "churn:1", key_id=None)
    assert caught.value.code == "model_in_use"
    assert caught.value.details == {"jobs": [queued.job.id]}
    with pytest.raises(Conflict):
        db.models.delete(acme, "churn", key_id=None)
    gone = db.models.delete(acme, "churn:2", key_id=None)  # not what the job uses
    assert [v.path for v in gone] == ["/v2.keras"]
    db.jobs.cancel(acme, queued.job.id)
    gone = db.models.delete(acme, "churn@production", key_id=None)
    assert [v.version for v in gone] == [1]
    assert db.models.get(acme, "churn").versions == []
    assert db.models.get(acme, "churn").aliases == {}
    db.models.delete(acme, "churn", key_id=None)
    with pytest.raises(NotFound):
        db.models.get(acme, "churn")


def test_a_reference_resolves_in_one_statement_and_an_id_wins_over_a_name(db: Database) -> None:
    acme = db.keys.ensure_tenant("acme")
    first = _register(db, "acme", "iris", "/iris-1.keras")
    _register(db, "acme", "iris", "/iris-2.keras")
    _register(db, "acme", first, "/named-like-an-id.keras")  # a model whose name is the other's id
    db.models.set_alias(acme, "iris", "production", 1, key_id=None)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for ref, path in (
            (first, "/iris-2.keras"),
            (f"{first}:1", "/iris-1.keras"),
            ("iris@production", "/iris-1.keras"),
        ):
            statements.clear()
            assert db.models.resolve(acme, ref).path == path
            assert len(statements) == 1, statements
        with pytest.raises(NotFound, match="no version 7"):
            db.models.resolve(acme, "iris:7")
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_a_resolved_version_carries_its_signature_typed(db: Database) -> None:
    tenant = db.keys.ensure_tenant("acme")
    stored = {"task": "regress", "kind": "tabular", "feature_names": ["a", "b"], "class_names": None, "extra": 1}
    draft = ModelVersionDraft(model_name="typed", path="/t.keras", architecture="mlp", metrics={}, signature=stored)
    db.models.register(tenant, draft)
    _register(db, "acme", "legacy", "/l.keras")  # registered before tasks were recorded: no task in it
    typed = db.models.resolve(tenant, "typed")
    assert typed.signature == stored  # as stored, for the API to show
    assert (typed.interface.task, typed.interface.kind) == ("regress", "tabular")
    assert (typed.interface.feature_names, typed.interface.class_names) == (("a", "b"), None)
    legacy = db.models.resolve(tenant, "legacy").interface
    assert (legacy.task, legacy.kind, legacy.feature_names) == ("classify", None, None)
