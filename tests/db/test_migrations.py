"""Alembic's ``upgrade head`` on an empty database gives exactly the models' schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from db.migrate import upgrade
from db.models import Base
from db.session import make_engine


def test_upgrade_head_matches_models(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"jobs", "job_events", "tenants", "api_keys", "datasets", "models", "model_versions"} <= tables


def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0002"
    engine.dispose()


def test_an_existing_database_gains_the_tenant_status_index(database_url: str) -> None:
    upgrade(database_url, "0001")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert "ix_jobs_tenant_status" not in {i["name"] for i in inspect(conn).get_indexes("jobs")}
    upgrade(database_url)
    with engine.connect() as conn:
        index = {i["name"]: i for i in inspect(conn).get_indexes("jobs")}["ix_jobs_tenant_status"]
    engine.dispose()
    assert index["column_names"] == ["tenant_id", "status"]
