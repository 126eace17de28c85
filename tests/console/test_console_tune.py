"""A tune's page in a real browser against a real stack: its children by status with a link to each, its trials
as a table (params, metric, state, epochs run; the best trial's row marked) and one SVG plot of the metric against
each searched parameter, drawn by the console's own script. Any browser console error fails."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.console.test_console_browser import TABLE_CELLS, console_problems, find, sign_in, status_of, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

N_TRIALS = 4
TUNE = {
    "train": {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 5, "batch_size": 16, "seed": 1},
    # One learning rate that learns in 5 epochs and one that barely does (the median pruner may stop it), plus a
    # float range drawn on a log scale: two plots.
    "search_space": {
        "learning_rate": {"type": "categorical", "choices": [0.05, 0.0001]},
        "params.dropout": {"type": "float", "low": 0.0, "high": 0.3},
    },
    "n_trials": N_TRIALS,
    "parallelism": 2,
    "sampler": "random",
    "pruner": "median",
    "seed": 2,
    "register_as": "iris-console-tuned",
}
POINTS = "return [...document.querySelectorAll(arguments[0])].map((c) => [c.dataset.trial, c.getAttribute('class')])"


def _api(stack: dict, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack['keys']['acme']}"}
    return httpx.request(method, f"{stack['url']}{path}", headers=headers, timeout=30, **kwargs)


def _finished(stack: dict, job_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _api(stack, "GET", f"/v1/jobs/{job_id}", params={"wait": 10, "until": "finished"}).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} did not finish")


def test_a_tune_page_shows_its_children_its_trials_and_a_plot_per_param(console_stack: dict, browser: Any) -> None:
    driver = browser
    stack = console_stack
    answer = _api(stack, "POST", "/v1/jobs", json={"type": "tune", "spec": TUNE})
    assert answer.status_code == 202, answer.text
    tune_id = answer.json()["id"]
    sign_in(driver, stack["url"], stack["keys"]["acme"])
    driver.get(f"{stack['url']}/console/#/jobs/{tune_id}")
    # While it runs, the trials made so far are read from its children.
    wait_until(lambda: find(driver, "#trials-table tbody tr"), 300, "the first trial in the table")
    wait_until(lambda: find(driver, "#job-children-counts"), 20, "the children's counts")

    done = _finished(stack, tune_id)
    assert done["status"] == "succeeded", done["error"]
    result = done["result"]
    best = result["best_trial"]
    wait_until(lambda: status_of(driver) == "succeeded", 60, "the tune's page to show it succeeded")
    wait_until(
        lambda: find(driver, "#job-children-counts").text == f"{N_TRIALS}/{N_TRIALS} succeeded", 30, "all children"
    )
    links = wait_until(
        lambda: (
            (found := driver.find_elements("css selector", "#job-children-list a.child-link"))
            and len(found) == N_TRIALS
            and found
        ),
        30,
        "a link to each child",
    )
    child_ids = {trial["job_id"] for trial in result["trials"]}
    assert {link.get_attribute("href").rsplit("/", 1)[-1] for link in links} == child_ids

    # The table: one row per trial in order, with its params, metric, state and epochs run; the best one marked.
    wait_until(lambda: find(driver, "#result-model"), 30, "the best model's link")
    header = driver.execute_script(TABLE_CELLS, "#trials-table thead")[0]
    assert header == ["trial", "learning_rate", "params.dropout", "val_loss", "state", "epochs run"]
    rows = driver.execute_script(TABLE_CELLS, "#trials-table tbody")
    assert len(rows) == N_TRIALS
    for row, trial in zip(rows, result["trials"], strict=True):
        assert row[0].startswith(f"{trial['number']} ")
        assert float(row[1]) == pytest.approx(trial["params"]["learning_rate"])
        assert row[4] == trial["state"] in ("complete", "pruned")
        assert row[5] == str(trial["epochs_run"])
        assert float(row[3]) == pytest.approx(trial["value"], rel=1e-2, abs=1e-3)
    marked = driver.find_elements("css selector", "#trials-table tr.best-trial")
    assert [row.get_attribute("data-trial") for row in marked] == [str(best)]
    assert f"best: trial {best}," in find(driver, "#tune-best").text

    # One plot per searched parameter, one dot per trial with a value, the best dot marked.
    plots = driver.find_elements("css selector", "#trial-plots svg.trial-plot")
    assert [plot.get_attribute("data-param") for plot in plots] == ["learning_rate", "params.dropout"]
    with_value = {str(trial["number"]) for trial in result["trials"] if trial["value"] is not None}
    for name in ("learning_rate", "params.dropout"):
        points = driver.execute_script(POINTS, f'#trial-plots svg[data-param="{name}"] circle.trial-point')
        assert {trial for trial, _ in points} == with_value
        assert [trial for trial, cls in points if "best" in cls.split()] == [str(best)]
        box = find(driver, f'#trial-plots svg[data-param="{name}"]').rect
        assert box["width"] > 100  # drawn, not collapsed
        assert box["height"] > 100

    # A child links back to its parent.
    links[0].click()
    parent = wait_until(lambda: find(driver, "#job-parent"), 30, "the child's link to its parent")
    assert parent.get_attribute("href").endswith(f"#/jobs/{tune_id}")
    assert console_problems(driver) == []
