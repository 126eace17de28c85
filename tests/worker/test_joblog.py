"""Per-job logging in the worker: job ids on records, what is kept, phases, and tracebacks without paths."""

from __future__ import annotations

import logging
import sys

from db.database import Database
from db.jobs import NewJob
from tensorq.core.settings import Settings
from worker import joblog
from worker.context import HandlerResult, JobContext
from worker.runner import JobRunner


def _job(db: Database) -> tuple[str, str]:
    tenant = db.keys.ensure_tenant("acme")
    return tenant, db.jobs.submit(NewJob(tenant, "train", {})).job.id


def test_scrub_removes_server_paths_but_keeps_urls_and_file_names(settings: Settings) -> None:
    site = f"{sys.prefix}/lib/python3.11/site-packages/keras/src/layers/core.py"
    text = (
        f'File "{site}", line 3\n'
        f'File "{joblog._ROOT}worker/handlers.py", line 9\n'
        f"No such file: {settings.artifact_dir}/datasets/t1/abc.csv and /srv/secret/dir/data.npz\n"
        "see http://example.com/a/b and ratio 1/2/3"
    )
    scrubbed = joblog.scrub(text, settings.artifact_dir)
    assert 'File "keras/src/layers/core.py"' in scrubbed
    assert 'File "worker/handlers.py"' in scrubbed
    assert "datasets/t1/abc.csv" in scrubbed
    assert "data.npz" in scrubbed
    assert "/srv" not in scrubbed
    assert str(settings.artifact_dir) not in scrubbed
    assert sys.prefix not in scrubbed
    assert "http://example.com/a/b" in scrubbed
    assert "1/2/3" in scrubbed


def test_a_job_keeps_its_own_lines_and_library_info_stays_out(settings: Settings, db: Database) -> None:
    tenant, job_id = _job(db)
    seen: list[str] = []

    class Remember(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.job_id)  # type: ignore[attr-defined]

    remember = Remember()
    logging.getLogger().addHandler(remember)
    try:
        with joblog.capture(db.logs, job_id, 1):
            logging.getLogger("worker.handlers").info("loading %s", "iris")
            logging.getLogger("shap").info("array([[0.1, 0.2]]) chatter")
            logging.getLogger("shap").warning("shap warns")
            logging.getLogger("worker.handlers").debug("too fine")
            joblog.set_phase("epoch 2")
        logging.getLogger("worker.handlers").info("after the job")
    finally:
        logging.getLogger().removeHandler(remember)
    lines = db.logs.page(tenant, job_id).lines
    assert [(line.logger, line.message) for line in lines] == [
        ("worker.handlers", "loading iris"),
        ("shap", "shap warns"),
        ("worker.joblog", "phase: epoch 2"),
    ]
    assert seen[:4] == [job_id] * 4
    assert seen[-1] == "-"


def test_an_unexpected_error_records_its_phase_and_a_traceback_without_paths(settings: Settings, db: Database) -> None:
    def handler(ctx: JobContext) -> HandlerResult:
        joblog.set_phase("loading data")
        open(f"{settings.artifact_dir}/nowhere/missing.csv")  # noqa: SIM115 - raises
        return HandlerResult({})

    tenant, job_id = _job(db)
    assert JobRunner(settings, db, {"train": handler}).run(job_id) == "failed"
    error = db.jobs.get_any(job_id).error
    assert error == {
        "code": "internal",
        "message": "unexpected FileNotFoundError while loading data",
        "details": {"phase": "loading data"},
    }
    messages = [line.message for line in db.logs.page(tenant, job_id).lines]
    assert messages[0].startswith("train job ")
    assert "phase: loading data" in messages
    (trace,) = [m for m in messages if "failed while loading data" in m]
    assert "Traceback" in trace
    assert "FileNotFoundError" in trace
    assert 'File "tests/worker/test_joblog.py"' in trace
    assert str(settings.artifact_dir) not in trace
    assert joblog._ROOT not in trace


def test_a_coded_error_records_its_phase_in_its_details(settings: Settings, db: Database) -> None:
    from tensorq.core.errors import InvalidRequest

    def handler(ctx: JobContext) -> HandlerResult:
        joblog.set_phase("building")
        raise InvalidRequest("unknown layer", details={"layer": "Foo"})

    _, job_id = _job(db)
    JobRunner(settings, db, {"train": handler}).run(job_id)
    error = db.jobs.get_any(job_id).error
    assert error["details"] == {"layer": "Foo", "phase": "building"}
    assert error["code"] == "invalid_request"
