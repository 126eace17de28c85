"""The console's lifecycle pages in a real browser against a real stack: job names and tags set in the form, shown
and filtered in the list; a model's aliases, lineage and history, an alias moved from the page; retry and delete
of jobs, delete of datasets and model versions, each behind a confirmation. Any browser console error fails."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.console.test_console_browser import (
    TABLE_CELLS,
    console_problems,
    find,
    sign_in,
    status_of,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

LONG_TRAIN = {"architecture": "mlp", "dataset": "builtin:breast_cancer", "epochs": 5000, "batch_size": 8}
JOB_TAGS = "return [...document.querySelectorAll('#job-tags .tag')].map((e) => e.textContent)"
ROW_NAMES = "return [...document.querySelectorAll('#jobs-table .job-name')].map((e) => e.textContent)"


def _api(stack: dict, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack['keys']['acme']}"}
    return httpx.request(method, f"{stack['url']}{path}", headers=headers, timeout=30, **kwargs)


def _finished(stack: dict, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _api(stack, "GET", f"/v1/jobs/{job_id}", params={"wait": 10, "until": "finished"}).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} did not finish")


def _cancelled_job(stack: dict, **extra: Any) -> str:
    """A long training job, cancelled (queued or running) and waited for."""
    job = _api(stack, "POST", "/v1/jobs", json={"type": "train", "spec": LONG_TRAIN, **extra}).json()
    _api(stack, "POST", f"/v1/jobs/{job['id']}/cancel")
    assert _finished(stack, job["id"])["status"] == "cancelled"
    return job["id"]


def test_names_and_tags_are_set_in_the_form_shown_in_the_list_and_filter_it(console_stack: dict, browser: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    driver = browser
    stack = console_stack
    _cancelled_job(stack, name="other-run", tags=["baseline"])
    sign_in(driver, stack["url"], stack["keys"]["acme"])
    panel = wait_until(lambda: find(driver, "#new-job-panel"), 20, "the new-job form")
    if not panel.get_attribute("open"):
        find(driver, "#new-job-panel > summary").click()
    area = find(driver, "#new-job-spec")
    area.clear()
    area.send_keys(json.dumps(LONG_TRAIN))
    find(driver, "#new-job-name").send_keys("churn weekly")
    find(driver, "#new-job-tags").send_keys("churn, weekly")
    find(driver, "#submit-job").click()
    job_id = wait_until(lambda: re.search(r"#/jobs/([\w-]+)$", driver.current_url), 20, "the job's page").group(1)
    try:
        assert wait_until(lambda: find(driver, "#job-name").text, 20, "the name on the job page") == "churn weekly"
        # Read in one script: the page re-renders as the job moves, so an element found first may be gone.
        tags = wait_until(lambda: driver.execute_script(JOB_TAGS), 20, "the tags on the job page")
        assert tags == ["churn", "weekly"]
    finally:
        _api(stack, "POST", f"/v1/jobs/{job_id}/cancel")  # the one worker is free for the next tests either way

    driver.get(f"{stack['url']}/console/#/jobs")
    wait_until(lambda: "churn weekly" in (driver.execute_script(ROW_NAMES) or []), 20, "the name in the list")
    rows = driver.execute_script(TABLE_CELLS, "#jobs-table tbody")
    tagged = [r for r in rows if r[2] == "churn weekly"]
    assert tagged
    assert "churn" in tagged[0][3]
    assert "weekly" in tagged[0][3]

    tag = find(driver, "#filter-tag")
    tag.send_keys("baseline", Keys.ENTER)
    wait_until(lambda: driver.execute_script(ROW_NAMES) == ["other-run"], 20, "only the baseline job listed")
    tag.clear()
    tag.send_keys(Keys.ENTER)
    wait_until(lambda: len(driver.execute_script(ROW_NAMES) or []) >= 2, 20, "the filter cleared")
    find(driver, '#jobs-table button.tag[data-tag="weekly"]').click()  # a tag chip filters on its tag
    wait_until(lambda: driver.execute_script(ROW_NAMES) == ["churn weekly"], 20, "only the weekly job listed")
    assert find(driver, "#filter-tag").get_attribute("value") == "weekly"
    tag = find(driver, "#filter-tag")
    tag.clear()
    tag.send_keys(Keys.ENTER)
    name = find(driver, "#filter-name")
    name.send_keys("other-run", Keys.ENTER)
    wait_until(lambda: driver.execute_script(ROW_NAMES) == ["other-run"], 20, "only the job of that name")
    name.clear()
    name.send_keys(Keys.ENTER)
    wait_until(lambda: len(driver.execute_script(ROW_NAMES) or []) >= 2, 20, "the name filter cleared")
    assert console_problems(driver) == []


def test_a_cancelled_job_is_retried_and_deleted_from_its_page(console_stack: dict, browser: Any) -> None:
    driver = browser
    stack = console_stack
    job_id = _cancelled_job(stack, name="to-retry")
    sign_in(driver, stack["url"], stack["keys"]["acme"])
    driver.get(f"{stack['url']}/console/#/jobs/{job_id}")
    wait_until(lambda: status_of(driver) == "cancelled", 20, "the cancelled job's page")
    find(driver, "#retry-job").click()
    again = wait_until(
        lambda: (m := re.search(r"#/jobs/([\w-]+)$", driver.current_url)) and m.group(1) != job_id and m.group(1),
        20,
        "the retry's page",
    )
    link = wait_until(lambda: find(driver, "#job-retry-of"), 20, "the link to the retried job")
    assert link.get_attribute("href").endswith(f"#/jobs/{job_id}")
    assert find(driver, "#job-name").text == "to-retry"
    _api(stack, "POST", f"/v1/jobs/{again}/cancel")
    assert _finished(stack, again)["retry_of"] == job_id

    driver.get(f"{stack['url']}/console/#/jobs/{job_id}")
    wait_until(lambda: status_of(driver) == "cancelled", 20, "the old job's page")
    find(driver, "#delete-job").click()
    assert find(driver, "#jobs-table") is None
    assert _api(stack, "GET", f"/v1/jobs/{job_id}").status_code == 200
    find(driver, "#delete-job-confirm").click()
    wait_until(lambda: driver.current_url.endswith("#/jobs"), 20, "the jobs list after the delete")
    assert _api(stack, "GET", f"/v1/jobs/{job_id}").status_code == 404
    assert console_problems(driver) == []


def test_a_dataset_is_deleted_after_confirmation(console_stack: dict, browser: Any) -> None:
    driver = browser
    stack = console_stack
    files = {"file": ("doomed.csv", b"a,b,label\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(20)))}
    dataset = _api(stack, "POST", "/v1/datasets", files=files).json()
    sign_in(driver, stack["url"], stack["keys"]["acme"])
    driver.get(f"{stack['url']}/console/#/datasets")
    button = wait_until(lambda: find(driver, f'button[data-dataset-id="{dataset["id"]}"]'), 20, "its delete button")
    button.click()
    find(driver, "#datasets-table .confirm-no").click()  # "Keep" takes nothing away
    assert _api(stack, "GET", f"/v1/datasets/{dataset['id']}").status_code == 200
    find(driver, f'button[data-dataset-id="{dataset["id"]}"]').click()
    find(driver, "#datasets-table .confirm-yes").click()
    wait_until(lambda: "doomed.csv" not in (find(driver, "#view").text or ""), 20, "the dataset gone from the list")
    assert _api(stack, "GET", f"/v1/datasets/{dataset['id']}").status_code == 404
    assert console_problems(driver) == []


def test_the_model_page_shows_aliases_and_lineage_moves_an_alias_and_deletes_a_version(
    console_stack: dict, browser: Any
) -> None:
    driver = browser
    stack = console_stack
    spec = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 2, "register_as": "iris-console"}
    jobs = [_api(stack, "POST", "/v1/jobs", json={"type": "train", "spec": spec}).json() for _ in range(2)]
    assert all(_finished(stack, job["id"])["status"] == "succeeded" for job in jobs)
    model = _api(stack, "GET", "/v1/models/iris-console").json()
    assert _api(stack, "PUT", f"/v1/models/{model['id']}/aliases/staging", json={"version": 1}).status_code == 200
    sign_in(driver, stack["url"], stack["keys"]["acme"])
    driver.get(f"{stack['url']}/console/#/models")
    wait_until(lambda: "staging → v1" in find(driver, "#models-table").text, 20, "the alias in the model list")
    driver.get(f"{stack['url']}/console/#/models/{model['id']}")
    aliases = wait_until(lambda: find(driver, "#aliases-table"), 20, "the aliases")
    assert "staging" in aliases.text
    assert "iris-console@staging" in aliases.text
    versions = driver.execute_script(TABLE_CELLS, "#versions-table tbody")
    assert [row[0] for row in versions] == ["2", "1"]
    assert "staging" in versions[1][1]
    # lineage: the data and the job
    assert "builtin:iris" in versions[1][6]
    assert "job" in versions[1][6]

    find(driver, "#alias-name").send_keys("production")
    from selenium.webdriver.support.ui import Select

    Select(find(driver, "#alias-version")).select_by_value("2")
    find(driver, "#alias-set").click()
    wait_until(lambda: "iris-console@production" in find(driver, "#aliases-table").text, 20, "the new alias")
    assert _api(stack, "GET", "/v1/models/iris-console").json()["aliases"] == {"staging": 1, "production": 2}
    wait_until(lambda: "production → v2" in find(driver, "#model-history").text, 20, "the move in the history")

    find(driver, '#versions-table button[data-version="1"]').click()
    find(driver, "#versions-table .confirm-yes").click()
    wait_until(
        lambda: [r[0] for r in driver.execute_script(TABLE_CELLS, "#versions-table tbody")] == ["2"],
        20,
        "version 1 gone",
    )
    assert [v["version"] for v in _api(stack, "GET", "/v1/models/iris-console").json()["versions"]] == [2]
    assert console_problems(driver) == []
