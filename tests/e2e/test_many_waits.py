"""``tensorq api`` as a user starts it (gunicorn, gevent, one process) holds 300 long-polls of one tenant at once:
none is refused, and each answers when its own job changes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from db.database import Database
from db.migrate import upgrade
from db.newjob import NewJob
from tensorq.localstack import ApiProcess
from tests.conftest import make_settings

WAITERS = 300
WAIT_S = 30  # the API's max_wait_s: a wait that ends unanswered is sent again


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[ApiProcess, Database]]:
    """The API in a process of its own (one gunicorn worker) and the database it serves."""
    settings = make_settings(tmp_path, database_url)
    upgrade(settings.database_url)
    db = Database(settings)
    api = ApiProcess(settings, tmp_path / "api.log").start()
    yield api, db
    api.stop()
    db.dispose()


def waits_held(client: httpx.Client, url: str) -> int:
    """The API process's ``tensorq_api_waits_held`` gauge."""
    for line in client.get(f"{url}/metrics").text.splitlines():
        if line.startswith("tensorq_api_waits_held "):
            return int(float(line.split()[1]))
    raise AssertionError("no tensorq_api_waits_held in /metrics")


async def _wait_until_finished(client: httpx.AsyncClient, url: str, job_id: str) -> tuple[int, str]:
    """Long-poll the job until it has finished; the last status code and the job's status."""
    while True:
        answer = await client.get(f"{url}/v1/jobs/{job_id}", params={"wait": WAIT_S, "until": "finished"})
        if answer.status_code != 200:
            return answer.status_code, ""
        status = answer.json()["status"]
        if status in ("succeeded", "failed", "cancelled"):
            return 200, status


async def _hold_and_change(api: ApiProcess, db: Database, key: str, tenant: str, job_ids: list[str]) -> list:
    limits = httpx.Limits(max_connections=WAITERS + 10, max_keepalive_connections=WAITERS + 10)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(limits=limits, timeout=WAIT_S + 60, headers=headers) as client:
        waits = [asyncio.create_task(_wait_until_finished(client, api.url, job_id)) for job_id in job_ids]
        with httpx.Client(timeout=30) as probe:
            deadline = time.monotonic() + 120
            while (held := await asyncio.to_thread(waits_held, probe, api.url)) < WAITERS:
                assert not any(w.done() for w in waits), [w.result() for w in waits if w.done()][:3]
                assert time.monotonic() < deadline, f"only {held} of {WAITERS} waits held"
                await asyncio.sleep(0.2)
            assert not any(w.done() for w in waits), "a wait answered before its job changed"
            for job_id in job_ids:
                await asyncio.to_thread(db.jobs.cancel, tenant, job_id)
            answers = await asyncio.gather(*waits)
            assert await asyncio.to_thread(waits_held, probe, api.url) == 0
        return answers


def test_300_waits_of_one_tenant_are_all_held_and_each_wakes_on_its_jobs_change(
    served: tuple[ApiProcess, Database],
) -> None:
    api, db = served
    key = db.keys.create("acme")
    tenant = db.keys.ensure_tenant("acme")
    job_ids = [db.jobs.submit(NewJob(tenant, "predict", {"model": "m", "inputs": [[0.0]]})).job.id for _ in range(300)]
    answers = asyncio.run(_hold_and_change(api, db, key, tenant, job_ids))
    assert [code for code, _ in answers if code != 200] == []  # none refused (no 429 too_many_waits)
    assert {status for _, status in answers} == {"cancelled"}
    assert len(answers) == WAITERS
