"""A real stack (Postgres, a Redis of its own, the API in a thread, one worker process) and Debian's chromium
driven by Selenium through chromium-driver; nothing is downloaded (the driver and browser paths are given)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db.database import Database
from db.migrate import upgrade
from tensorq.localstack import ApiThread, WorkerProcess, wait_http
from tests.conftest import REQUIRE_SERVICES, make_settings
from tests.services import RedisServer

CHROMIUM = os.environ.get("TENSORQ_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TENSORQ_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory, postgres_server: str) -> Iterator[dict]:
    """A migrated Postgres database, a private Redis, the API in a thread, one real worker, and keys."""
    name = f"tensorq_console_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    home = tmp_path_factory.mktemp("console")
    redis_server = RedisServer(home / "redis").start()
    # A worker unseen for 6 s is not live (it heartbeats every 2 s): the last test stops it and waits that long.
    # Four wait slots per tenant: a test takes them all to see the job page fall back to plain reads.
    settings = make_settings(home, url, broker_url=redis_server.url, worker_stale_s=6.0, max_waits_per_tenant=4)
    upgrade(url)
    db = Database(settings)
    api = ApiThread(settings).start()
    worker = WorkerProcess(settings, home / "worker.log").start()
    wait_http(f"{api.url}/readyz")
    keys = {
        "acme": db.keys.create("acme"),
        "acme_read_only": db.keys.create("acme", read_only=True),
        "globex": db.keys.create("globex"),
    }
    try:
        yield {"url": api.url, "keys": keys, "db": db, "settings": settings, "home": home, "worker": worker}
    finally:
        worker.stop()
        api.stop()
        db.dispose()
        redis_server.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        log = home / "worker.log"
        if log.exists():
            print(log.read_text()[-3000:])


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests keep their screenshots: ``$TENSORQ_TEST_ARTIFACTS/console`` (CI keeps that folder
    as an artifact), else pytest's temporary folder; never the git tree."""
    root = os.environ.get("TENSORQ_TEST_ARTIFACTS")
    folder = Path(root) / "console" if root else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless chromium through chromium-driver, with the console's log kept for the tests to read."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        message = f"not installed: {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1700",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
