"""Alembic's ``upgrade head`` on an empty database gives exactly the models' schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from db.migrate import alembic_config, upgrade
from db.models import Base
from db.session import make_engine

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_the_migrations_form_one_line_of_revisions() -> None:
    assert HEAD is not None
    assert HEAD >= "0003"


def test_upgrade_head_matches_models(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"jobs", "job_events", "job_logs", "tenants", "api_keys", "datasets", "models", "model_versions"} <= tables


def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
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


def test_an_existing_database_gains_the_job_log_table(database_url: str) -> None:
    upgrade(database_url, "0002")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert "job_logs" not in inspect(conn).get_table_names()
    engine.dispose()  # SQLite's pooled connection would keep the old schema
    upgrade(database_url)
    with engine.connect() as conn:
        index = {i["name"]: i for i in inspect(conn).get_indexes("job_logs")}["ix_job_logs_job_id_id"]
    engine.dispose()
    assert index["column_names"] == ["job_id", "id"]
