"""The cluster each drill runs on: Postgres behind a cuttable proxy, a Redis of its own, the API (``tensorq api``
in a process of its own), workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db.database import Database
from db.migrate import upgrade
from tensorq.client import TensorQClient
from tensorq.localstack import ApiProcess
from tests.conftest import make_settings
from tests.reliability.harness import Cluster, RedisServer, TcpProxy, check_invariants


@pytest.fixture
def make_cluster(tmp_path: Path, postgres_server: str) -> Iterator:
    """A factory of clusters; every one is checked for the invariants and torn down after the drill."""
    made: list[tuple[Cluster, str]] = []
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")

    def make(redis_appendonly: bool = False, **overrides: object) -> Cluster:
        name = f"tensorq_drill_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        direct = make_url(postgres_server).set(database=name)
        proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432))
        through_proxy = direct.set(host="127.0.0.1", port=proxy.port)
        redis_server = RedisServer(tmp_path / "redis", appendonly=redis_appendonly).start()
        values = {
            "lease_s": 4.0,
            "heartbeat_s": 1.0,
            "reaper_interval_s": 1.0,
            "publish_grace_s": 5.0,
            "broker_url": redis_server.url,
            **overrides,
        }
        settings = make_settings(tmp_path, through_proxy.render_as_string(hide_password=False), **values)
        upgrade(direct.render_as_string(hide_password=False))
        db = Database(settings)
        admin_db = Database(make_settings(tmp_path, direct.render_as_string(hide_password=False)))
        # The API as it is deployed: `tensorq api` under gunicorn's gevent worker, its waits holding no thread.
        api = ApiProcess(settings, tmp_path / f"api-{name}.log").start()
        cluster = Cluster(
            settings,
            db,
            admin_db,
            redis_server,
            proxy,
            api,
            TensorQClient(api.url, admin_db.keys.create("acme")),
            tmp_path,
        )
        made.append((cluster, name))
        return cluster

    yield make

    for cluster, name in made:
        try:
            for worker in cluster.workers:
                worker.kill()
            cluster.proxy.restore()
            check_invariants(cluster.admin_db)
        finally:
            for worker in cluster.workers:
                worker.kill()
            cluster.client.close()
            cluster.api.stop()
            cluster.db.dispose()
            cluster.admin_db.dispose()
            cluster.proxy.close()
            cluster.redis.stop()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
