"""The web console in a real browser against a real stack: sign in, train from the page and watch it, explain,
see the heatmap rendered, and find that another tenant sees none of it."""

from __future__ import annotations

import json
import re
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EPOCHS = 12
TRAIN_SPEC = {
    "architecture": "cnn",
    "dataset": "builtin:digits",
    "epochs": EPOCHS,
    "batch_size": 32,
    "validation_split": 0.15,
    "seed": 3,
    "model_name": "digits-console",
}
NETWORK_404 = re.compile(r"status of 404")
TEXT_OF = "const found = document.querySelector(arguments[0]); return found && found.innerText"
TABLE_CELLS = (
    "return [...document.querySelectorAll(arguments[0] + ' tr')].map((r) => [...r.cells].map((c) => c.textContent))"
)
IMAGE_LOADED = "return arguments[0].complete && arguments[0].naturalWidth"
HEADING_ID = "const id = document.querySelector('h1 .mono'); return id && id.textContent"
ROW_TYPES = "return [...document.querySelectorAll('#jobs-table tbody tr td:nth-child(2)')].map((td) => td.textContent)"


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll ``condition`` until it answers something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - the page is still changing under us
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def find(driver: Any, selector: str) -> Any:
    """The first element matching the CSS ``selector``, or None."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0] if found else None


def console_problems(driver: Any, expected: re.Pattern[str] = NETWORK_404) -> list[str]:
    """The browser console's errors since the last call, less the network answers the test expects (by default
    404s: another tenant's job, endpoints a server may not have)."""
    entries = driver.get_log("browser")
    return [
        e["message"]
        for e in entries
        if e["level"] == "SEVERE" and not (e.get("source") == "network" and expected.search(e["message"]))
    ]


def sign_in(driver: Any, url: str, key: str) -> None:
    """Open the console, sign out whoever is signed in (with the page's own button), sign in with ``key``."""
    driver.get(f"{url}/console/#/jobs")
    wait_until(lambda: find(driver, "#api-key") or find(driver, "#jobs-list"), 20, "the console to start")
    if find(driver, "#api-key") is None:
        find(driver, "#sign-out").click()
    field = wait_until(lambda: find(driver, "#api-key"), 20, "the sign-in form")
    field.send_keys(key)
    find(driver, "#sign-in").click()
    wait_until(lambda: find(driver, "#jobs-list table, #jobs-list .empty"), 20, "the jobs list after sign-in")
    assert key not in driver.current_url


def submit_from_page(driver: Any, job_type: str, spec: dict) -> str:
    """Open the new-job form, type the spec, submit; the id of the job whose page opens."""
    from selenium.webdriver.support.ui import Select

    driver.get(driver.current_url.split("#")[0] + "#/jobs")
    panel = wait_until(lambda: find(driver, "#new-job-panel"), 20, "the new-job form")
    if not panel.get_attribute("open"):
        find(driver, "#new-job-panel > summary").click()
    Select(find(driver, "#new-job-type")).select_by_value(job_type)
    area = find(driver, "#new-job-spec")
    area.clear()
    area.send_keys(json.dumps(spec))
    find(driver, "#submit-job").click()
    match = wait_until(lambda: re.search(r"#/jobs/([\w-]+)$", driver.current_url), 20, "the new job's page")
    return match.group(1)


PAGE_STATE = """
const badge = document.querySelector("#job-status .badge");
const bar = document.querySelector("#job-progress");
const chart = document.querySelector("#loss-chart");
return [badge ? badge.dataset.status : null, bar ? bar.value : null, bar ? bar.max : null,
        chart ? Number(chart.dataset.points || 0) : 0];
"""


def page_state(driver: Any) -> tuple[str | None, float | None, float | None, int]:
    """In one read (the page redraws as it goes): the job's status, the progress bar's value and max, and
    how many epochs the loss chart holds."""
    status, value, maximum, points = driver.execute_script(PAGE_STATE)
    return status, value, maximum, points


def status_of(driver: Any) -> str | None:
    """The status badge's value on a job page."""
    return page_state(driver)[0]


@pytest.fixture(scope="module")
def watched_training(console_stack: dict, browser: Any, screenshots: Any) -> dict:
    """Sign in, submit a training job from the page, and record what its page shows until it finishes."""
    driver = browser
    sign_in(driver, console_stack["url"], console_stack["keys"]["acme"])
    job_id = submit_from_page(driver, "train", TRAIN_SPEC)
    seen: list[tuple[str, float, float, int]] = []  # (status, progress value, progress max, loss-chart points)
    shot = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status, value, maximum, points = page_state(driver)
        if status and value is not None:
            row = (status, float(value), float(maximum), points)
            if not seen or seen[-1] != row:
                seen.append(row)
            if shot is None and status == "running" and row[1] >= 3:
                shot = screenshots / "job-page-training.png"
                driver.save_screenshot(str(shot))
        if status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    time.sleep(1.0)  # the last events and the result's history land right after the state change
    driver.save_screenshot(str(screenshots / "job-page-succeeded.png"))
    return {
        "job_id": job_id,
        "seen": seen,
        "status": status_of(driver),
        "final_points": int(find(driver, "#loss-chart").get_attribute("data-points") or 0),
        "series": find(driver, "#loss-chart").get_attribute("data-series"),
        "metric_series": find(driver, "#metric-chart").get_attribute("data-series"),
        "timeline": find(driver, "#timeline").text,
        "model_href": (find(driver, "#result-model") or find(driver, "body")).get_attribute("href"),
        "problems": console_problems(driver),
        "screenshot": shot,
        "cookies": driver.get_cookies(),
    }


def test_the_console_page_carries_a_strict_csp(console_stack: dict) -> None:
    page = httpx.get(f"{console_stack['url']}/console/")
    csp = page.headers["Content-Security-Policy"]
    assert page.status_code == 200
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_a_training_job_submitted_from_the_page_shows_progress_and_curves_moving_to_success(
    watched_training: dict,
) -> None:
    seen = watched_training["seen"]
    assert watched_training["status"] == "succeeded", seen[-5:]
    running = [row for row in seen if row[0] == "running"]
    values = sorted({row[1] for row in running if row[1] > 0})
    points = sorted({row[3] for row in running if row[3] > 0})
    assert len(values) >= 2, f"the progress bar did not move while running: {seen}"
    assert len(points) >= 2, f"the loss curve did not grow while running: {seen}"
    assert all(row[2] == EPOCHS for row in running if row[1] > 0)
    assert [row[1] for row in running] == sorted(row[1] for row in running), "progress went backwards"
    assert watched_training["final_points"] == EPOCHS
    assert "loss" in watched_training["series"].split(",")
    assert "val_loss" in watched_training["series"].split(",")
    assert "accuracy" in watched_training["metric_series"].split(",")
    timeline = watched_training["timeline"]
    assert "queued" in timeline
    assert "running" in timeline
    assert "succeeded" in timeline
    assert f"{EPOCHS} progress reports" in timeline
    assert "/console/#/models/" in watched_training["model_href"]
    assert watched_training["screenshot"] is not None
    assert watched_training["screenshot"].stat().st_size > 10_000
    assert watched_training["cookies"] == []
    assert watched_training["problems"] == []


def test_an_explanation_shows_each_heatmap_rendered_beside_its_input(
    console_stack: dict, browser: Any, watched_training: dict, screenshots: Any
) -> None:
    driver = browser
    model_id = watched_training["model_href"].rsplit("/", 1)[-1]
    images = load_digits().images[:2]
    job_id = submit_from_page(
        driver, "explain", {"model": model_id, "inputs": np.round(images, 1).tolist(), "steps": 32}
    )
    wait_until(lambda: status_of(driver) == "succeeded", 300, "the explanation to succeed", every=0.25)

    def rendered() -> list[Any]:
        images = driver.find_elements("css selector", "#explanations img.artifact-image")
        loaded = [i for i in images if driver.execute_script(IMAGE_LOADED, i)]
        return loaded if len(loaded) == len(images) == 2 else []

    heatmaps = wait_until(rendered, 30, "both heatmaps to render")
    assert [img.get_attribute("data-artifact") for img in heatmaps] == ["heatmap_0.png", "heatmap_1.png"]
    png = httpx.get(
        f"{console_stack['url']}/v1/jobs/{job_id}/artifacts/heatmap_0.png",
        headers={"Authorization": f"Bearer {console_stack['keys']['acme']}"},
    ).content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    rendered = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", heatmaps[0])
    assert rendered == [width, height]
    assert width > 100
    assert heatmaps[0].get_attribute("src").startswith("blob:")
    inputs = driver.find_elements("css selector", "#explanations canvas.input-picture")
    assert len(inputs) == 2
    assert inputs[0].get_attribute("width") == "8"
    assert find(driver, "#result").text.count("completeness_gap") == 1
    driver.save_screenshot(str(screenshots / "explanation-page.png"))
    assert console_problems(driver) == []

    find(driver, "#resubmit-job").click()
    wait_until(lambda: job_id not in driver.current_url, 20, "the resubmitted job's address")
    again = driver.current_url.rsplit("/", 1)[-1]
    wait_until(lambda: driver.execute_script(HEADING_ID) == again, 20, "the resubmitted job's page")
    wait_until(lambda: status_of(driver) == "succeeded", 300, "the resubmitted explanation to succeed", every=0.25)
    assert json.loads(find(driver, "#spec-json").get_attribute("textContent"))["model"] == model_id


def test_the_jobs_list_filters_by_type_and_status(console_stack: dict, browser: Any, screenshots: Any) -> None:
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(f"{console_stack['url']}/console/#/jobs")
    wait_until(lambda: find(driver, "#jobs-table"), 20, "the jobs table")
    driver.save_screenshot(str(screenshots / "jobs-list.png"))
    Select(find(driver, "#filter-type")).select_by_value("explain")
    types = wait_until(
        lambda: (rows := driver.execute_script(ROW_TYPES)) and set(rows) == {"explain"} and rows,
        20,
        "only explain jobs listed",
    )
    assert len(types) == 2
    Select(find(driver, "#filter-status")).select_by_value("failed")
    wait_until(
        lambda: find(driver, "#jobs-table") is None and "No jobs match" in find(driver, "#jobs-list").text,
        20,
        "an empty list",
    )
    Select(find(driver, "#filter-type")).select_by_value("")
    Select(find(driver, "#filter-status")).select_by_value("")
    assert console_problems(driver) == []


def _hold_long_polls(url: str, key: str, job_id: str, count: int, stop: threading.Event) -> list[threading.Thread]:
    """``count`` threads that each take one of the tenant's long-poll slots (retrying while refused) and hold it
    until the job finishes or the API's longest wait passes."""

    def hold() -> None:
        while not stop.is_set():
            answer = httpx.get(
                f"{url}/v1/jobs/{job_id}",
                params={"wait": 30, "until": "finished"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            if answer.status_code != 429:
                return
            time.sleep(0.02)

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_a_running_job_keeps_moving_when_its_event_stream_is_refused_and_is_cancelled_from_its_page(
    console_stack: dict, browser: Any
) -> None:
    driver = browser
    url, key = console_stack["url"], console_stack["keys"]["acme"]
    sign_in(driver, url, key)
    spec = {"architecture": "mlp", "dataset": "builtin:breast_cancer", "epochs": 5000, "batch_size": 8}
    job_id = submit_from_page(driver, "train", spec)
    wait_until(lambda: (state := page_state(driver))[0] == "running" and state[1] >= 1, 300, "the job to train")

    # Every wait slot of the tenant taken by others' long-polls: the page's event stream is refused (429), and
    # it must fall back to plain reads.
    driver.get(f"{url}/console/#/jobs")
    stop = threading.Event()
    holders = _hold_long_polls(url, key, job_id, console_stack["settings"].max_waits_per_tenant, stop)
    try:
        driver.get(f"{url}/console/#/jobs/{job_id}")
        refused = re.compile(rf"/v1/jobs/{job_id} - Failed to load resource: .*status of 429")
        entries: list[dict] = []

        def refused_once() -> bool:
            entries.extend(driver.get_log("browser"))
            return any(refused.search(e["message"]) for e in entries)

        wait_until(refused_once, 60, "an event stream refused with 429")
        first = page_state(driver)[1]
        wait_until(lambda: page_state(driver)[1] >= first + 2, 30, "progress read without a stream")
        assert find(driver, "#banner").is_displayed() is False
        assert [e["message"] for e in entries if e["level"] == "SEVERE" and not refused.search(e["message"])] == []
        find(driver, "#cancel-job").click()
        wait_until(lambda: status_of(driver) == "cancelled", 60, "the job to be cancelled", every=0.25)
    finally:
        stop.set()
        for thread in holders:
            thread.join(timeout=60)
    assert find(driver, "#cancel-job") is None
    assert find(driver, "#resubmit-job") is not None
    assert "cancelled" in find(driver, "#timeline").text
    assert console_problems(driver, re.compile(r"status of 4(04|29)")) == []


def test_a_failed_job_shows_its_error_phase_and_log_lines(console_stack: dict, browser: Any, screenshots: Any) -> None:
    driver = browser
    key = console_stack["keys"]["acme"]
    dataset = httpx.post(
        f"{console_stack['url']}/v1/datasets",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("words.csv", b"a,b,label\n1,x,0\n2,y,0\n3,z,0\n")},
    ).json()  # one class: the API takes it, the worker refuses it when it builds the model
    sign_in(driver, console_stack["url"], key)
    spec = {"architecture": "mlp", "dataset": dataset["id"], "label_column": "label", "validation_split": 0.0}
    submit_from_page(driver, "train", {**spec, "epochs": 1})
    wait_until(lambda: status_of(driver) == "failed", 120, "the job to fail", every=0.25)
    error = wait_until(lambda: driver.execute_script(TEXT_OF, "#job-error"), 10, "the error")
    assert "invalid_request" in error
    assert "two classes" in error
    assert "phase: building" in error
    logs = wait_until(
        lambda: (text := driver.execute_script(TEXT_OF, "#job-logs")) and "failed while" in text and text, 20, "logs"
    )
    assert "attempt 1 of" in logs
    driver.save_screenshot(str(screenshots / "failed-job-page.png"))
    assert console_problems(driver) == []


def test_a_dataset_uploaded_from_the_page_is_listed(console_stack: dict, browser: Any) -> None:
    driver = browser
    sign_in(driver, console_stack["url"], console_stack["keys"]["acme"])
    csv = console_stack["home"] / "flowers.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(30)))
    driver.get(f"{console_stack['url']}/console/#/datasets")
    field = wait_until(lambda: find(driver, "#dataset-file"), 20, "the upload form")
    field.send_keys(str(csv))
    find(driver, "#dataset-upload").click()
    table = wait_until(
        lambda: (found := find(driver, "#datasets-table")) and "flowers.csv" in found.text and found,
        20,
        "the uploaded dataset listed",
    )
    assert "rows 30" in table.text
    assert "label" in table.text
    assert console_problems(driver) == []


def test_a_dataset_page_shows_the_inferred_columns_and_the_first_rows(
    console_stack: dict, browser: Any, screenshots: Any
) -> None:
    driver = browser
    key = console_stack["keys"]["acme"]
    rows = "".join(f"{i},{['oslo', 'lima', ''][i % 3]},{'' if i == 4 else i * 1.5},{i % 2}\n" for i in range(12))
    dataset = httpx.post(
        f"{console_stack['url']}/v1/datasets",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("cities.csv", ("id,city,price,label\n" + rows).encode())},
    ).json()
    sign_in(driver, console_stack["url"], key)
    driver.get(f"{console_stack['url']}/console/#/datasets")
    link = wait_until(lambda: find(driver, f'#datasets-table a[href="#/datasets/{dataset["id"]}"]'), 20, "the link")
    link.click()
    schema = wait_until(lambda: driver.execute_script(TEXT_OF, "#dataset-schema"), 20, "the columns")
    lines = [line.split("\t") for line in schema.splitlines()[1:]]
    assert [cells[:3] for cells in lines] == [
        ["id", "numeric", "0"],
        ["city", "categorical", "4"],
        ["price", "numeric", "1"],
        ["label", "numeric", "0"],
    ]
    preview = driver.execute_script(TEXT_OF, "#dataset-preview")
    assert preview.splitlines()[0].lower().split("\t") == ["id", "city", "price", "label"]  # headers shown in capitals
    assert len(preview.splitlines()) == 11  # the header and the first 10 rows
    assert "(missing)" in preview.splitlines()[3]  # row 2: no city
    driver.save_screenshot(str(screenshots / "dataset-page.png"))
    driver.get(f"{console_stack['url']}/console/#/datasets/00000000-0000-0000-0000-000000000000")
    assert "no dataset" in wait_until(lambda: driver.execute_script(TEXT_OF, "#dataset-missing"), 20, "not found")
    assert console_problems(driver) == []


def test_the_model_page_shows_its_version_and_the_job_that_made_it(
    console_stack: dict, browser: Any, watched_training: dict, screenshots: Any
) -> None:
    driver = browser
    sign_in(driver, console_stack["url"], console_stack["keys"]["acme"])
    model_id = watched_training["model_href"].rsplit("/", 1)[-1]
    driver.get(f"{console_stack['url']}/console/#/models")
    wait_until(lambda: find(driver, f'#models-table a[href="#/models/{model_id}"]'), 20, "the model listed").click()
    versions = wait_until(lambda: find(driver, "#versions-table"), 20, "the model's versions")
    assert find(driver, f'#versions-table a[href="#/jobs/{watched_training["job_id"]}"]') is not None
    assert "cnn" in versions.text
    assert "accuracy" in versions.text
    assert "Download .keras" in versions.text
    driver.save_screenshot(str(screenshots / "model-page.png"))
    assert console_problems(driver) == []


def test_an_agent_shows_its_returns_curve_then_its_actions_and_their_attributions(
    console_stack: dict, browser: Any, screenshots: Any
) -> None:
    driver = browser
    sign_in(driver, console_stack["url"], console_stack["keys"]["acme"])
    environment = {"name": "CartPole-v1", "max_steps": 2048, "eval_episodes": 5}
    spec = {"architecture": "policy", "seed": 0, "register_as": "balancer", "environment": environment}
    submit_from_page(driver, "train", spec | {"params": {"steps_per_iteration": 512}})
    wait_until(lambda: status_of(driver) == "succeeded", 300, "the agent's training to succeed", every=0.25)
    assert driver.execute_script(TEXT_OF, "#job-environment") == "CartPole-v1"
    chart = find(driver, "#metric-chart")
    wait_until(lambda: chart.get_attribute("data-points") == "4", 20, "the returns curve of four iterations")
    assert chart.get_attribute("data-series") == "mean_return"  # the counters are not curves
    assert driver.execute_script(TEXT_OF, "#result-stopped-by") == "stopped by max_steps"
    driver.save_screenshot(str(screenshots / "agent-training.png"))

    observations = [[0.0, 0.0, 0.1, 0.5], [0.0, 0.0, -0.1, -0.5]]
    submit_from_page(driver, "predict", {"model": "balancer", "inputs": observations})
    wait_until(lambda: status_of(driver) == "succeeded", 300, "the agent's predict to succeed", every=0.25)
    rows = wait_until(lambda: driver.execute_script(TABLE_CELLS, "#policy-actions"), 20, "the actions table")
    assert rows[0] == ["observation", "action", "probabilities"]
    assert [row[0] for row in rows[1:]] == ["0", "1"]
    assert all(re.fullmatch(r"[01] \(push_(left|right)\)", row[1]) for row in rows[1:])

    submit_from_page(driver, "explain", {"model": "balancer", "inputs": observations, "steps": 32})
    wait_until(lambda: status_of(driver) == "succeeded", 300, "the agent's explanation to succeed", every=0.25)
    rows = wait_until(lambda: driver.execute_script(TABLE_CELLS, "#policy-attributions"), 20, "the attributions")
    assert rows[0][2:] == ["cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"]
    assert len(rows) == 3
    assert find(driver, "#result").text.count("completeness_gap") == 1
    driver.save_screenshot(str(screenshots / "agent-explanation.png"))
    assert console_problems(driver) == []


def test_the_workers_page_shows_the_live_worker_and_its_queues(
    console_stack: dict, browser: Any, screenshots: Any
) -> None:
    driver = browser
    sign_in(driver, console_stack["url"], console_stack["keys"]["acme"])
    driver.get(f"{console_stack['url']}/console/#/workers")
    workers = wait_until(lambda: driver.execute_script(TEXT_OF, "#workers-table"), 30, "the live worker listed")
    assert "train" in workers
    assert "explain" in workers
    assert "CPU" in workers
    queues = wait_until(lambda: driver.execute_script(TEXT_OF, "#queues-table"), 10, "the queues")
    assert all(name in queues for name in ("train", "predict", "explain"))
    driver.save_screenshot(str(screenshots / "workers-page.png"))
    assert console_problems(driver) == []


def test_a_read_only_key_sees_the_jobs_but_no_write_buttons(
    console_stack: dict, browser: Any, watched_training: dict
) -> None:
    driver = browser
    sign_in(driver, console_stack["url"], console_stack["keys"]["acme_read_only"])
    assert find(driver, "#who-scope").text == "read-only"
    assert find(driver, f'#jobs-table a[data-job-id="{watched_training["job_id"]}"]') is not None
    assert find(driver, "#new-job-panel") is None
    driver.get(f"{console_stack['url']}/console/#/jobs/{watched_training['job_id']}")
    wait_until(lambda: status_of(driver) == "succeeded", 20, "the job page")
    assert find(driver, "#job-actions button") is None
    driver.get(f"{console_stack['url']}/console/#/datasets")
    wait_until(lambda: find(driver, "#datasets-table"), 20, "the datasets page")
    assert find(driver, "#dataset-file") is None
    assert console_problems(driver) == []


def test_another_tenant_sees_none_of_it(console_stack: dict, browser: Any, watched_training: dict) -> None:
    driver = browser
    url = console_stack["url"]
    sign_in(driver, url, console_stack["keys"]["globex"])
    assert find(driver, "#jobs-table") is None
    assert "No jobs" in find(driver, "#jobs-list").text
    driver.get(f"{url}/console/#/jobs/{watched_training['job_id']}")
    missing = wait_until(lambda: find(driver, "#job-missing"), 20, "the not-found page")
    assert missing.text == f"There is no job {watched_training['job_id']} among this tenant's jobs."
    assert find(driver, '#job-missing + p a[href="#/jobs"]').text == "← All jobs"
    driver.get(f"{url}/console/#/models")
    wait_until(lambda: find(driver, "#models-table, .empty"), 20, "the models page")
    assert find(driver, "#models-table") is None
    model_id = watched_training["model_href"].rsplit("/", 1)[-1]
    driver.get(f"{url}/console/#/models/{model_id}")
    missing = wait_until(lambda: find(driver, "#model-missing"), 20, "the model's not-found page")
    assert missing.text == f"There is no model {model_id} among this tenant's models."
    assert driver.execute_script(TEXT_OF, "h1") == "Model not found"
    assert console_problems(driver) == []


def test_with_no_worker_left_a_queued_job_says_why_it_waits(
    console_stack: dict, browser: Any, screenshots: Any
) -> None:
    """Last: it stops the stack's worker."""
    driver = browser
    url = console_stack["url"]
    console_stack["worker"].stop()
    sign_in(driver, url, console_stack["keys"]["acme"])
    submit_from_page(driver, "train", {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1})
    # First its place in the queue ("next in its queue"), then, once no worker has served the queue for
    # worker_stale_s, why it waits.
    reason = "no live worker serves queue 'train'"
    wait_until(lambda: driver.execute_script(TEXT_OF, "#job-waiting") == reason, 90, "the waiting reason", every=0.5)
    assert status_of(driver) == "queued"
    driver.save_screenshot(str(screenshots / "job-page-waiting.png"))
    driver.get(f"{url}/console/#/workers")
    workers = wait_until(lambda: find(driver, "#workers .empty"), 20, "no live worker listed")
    assert "No live workers" in workers.text
    rows = {row[0]: row for row in driver.execute_script(TABLE_CELLS, "#queues-table")}
    assert rows["train"][1] == "1", rows
    assert rows["train"][4] == "0", rows
    assert console_problems(driver) == []
