"""Per-job logging in a worker: every log record carries the id of the job being run, and while a job runs
its lines (the project's at INFO and above, libraries' at WARNING and above) are kept in SQL for its tenant,
with the phase the job is in and no server paths.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db.joblogs import JobLogStore, LogLine
from db.models import utcnow

log = logging.getLogger(__name__)

# Loggers whose INFO lines belong in a job's log; everything else (shap, absl, urllib3...) from WARNING up.
PROJECT_LOGGERS = frozenset({"tensorq", "worker", "ml", "db", "api"})
FLUSH_EVERY_S = 1.0
# The end of a traceback kept in a job's log line (a stored line holds 4000 characters).
MAX_TRACEBACK_CHARS = 3500

_ROOT = str(Path(__file__).resolve().parents[1]) + "/"
_PACKAGES = re.compile(r"/[^\s\"':]*/(?:site|dist)-packages/")
_STDLIB = re.compile(r"/[^\s\"':]*/lib/python3\.\d+/")
_ANY_FOLDER = re.compile(r"(?<![\w/.:~])/(?:[\w.@+-]+/)+")


def scrub(text: str, *roots: Path | str) -> str:
    """``text`` without server paths: the project root, packages, the standard library and ``roots`` go,
    any other absolute folder is cut to the file name."""
    for root in roots:
        text = text.replace(str(root).rstrip("/") + "/", "")
    text = _PACKAGES.sub("", text).replace(_ROOT, "")
    text = _STDLIB.sub("", text)
    return _ANY_FOLDER.sub("", text)


@dataclass
class JobLog:
    """The log of one running job: its buffered lines, the phase it is in, and the store they go to."""

    store: JobLogStore
    job_id: str
    attempt: int
    roots: tuple[Path | str, ...] = ()
    phase: str = "starting"
    buffer: list[LogLine] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def add(self, record: logging.LogRecord, text: str) -> None:
        """Buffer one formatted line (ignored once the job's outcome has been written)."""
        line = LogLine(self.attempt, record.levelname, record.name, scrub(text, *self.roots), utcnow())
        with self.lock:
            if not self.closed:
                self.buffer.append(line)

    def flush(self, *, close: bool = False) -> None:
        """Write the buffered lines; with ``close``, take no more (the outcome is about to be written)."""
        with self.lock:
            lines, self.buffer = self.buffer, []
            self.closed = self.closed or close
        try:
            self.store.append(self.job_id, lines)
        except Exception:  # noqa: BLE001 - losing log lines must never fail the job
            log.warning("could not store %d log lines of job %s", len(lines), self.job_id, exc_info=True)


CURRENT: ContextVar[JobLog | None] = ContextVar("tensorq_job_log", default=None)


class _WithJobId:
    """A log record factory that puts the current job's id on each record it makes."""

    def __init__(self, factory: Callable[..., logging.LogRecord]) -> None:
        self.factory = factory

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.factory(*args, **kwargs)
        current = CURRENT.get()
        record.job_id = current.job_id if current is not None else "-"
        return record


def install_job_id_on_records() -> None:
    """Give every log record of this process a ``job_id`` attribute (``-`` outside a job); idempotent."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _WithJobId):
        logging.setLogRecordFactory(_WithJobId(factory))


def wanted(record: logging.LogRecord) -> bool:
    """Whether a record belongs in a job's log: the project's from INFO, libraries' from WARNING."""
    floor = logging.INFO if record.name.split(".")[0] in PROJECT_LOGGERS else logging.WARNING
    return record.levelno >= floor


class _JobLogHandler(logging.Handler):
    """On the root logger: hands each wanted record to the log of the job running in this context."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Buffer the record for the current job, if any."""
        current = CURRENT.get()
        if current is not None and wanted(record):
            current.add(record, self.format(record))


_HANDLER = _JobLogHandler()


def _attach() -> None:
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


@contextmanager
def capture(store: JobLogStore, job_id: str, attempt: int, roots: tuple[Path | str, ...] = ()) -> Iterator[JobLog]:
    """Keep the job's log lines while the block runs, written every second and at the end."""
    install_job_id_on_records()
    _attach()
    job_log = JobLog(store, job_id, attempt, roots)
    token = CURRENT.set(job_log)
    stop = threading.Event()

    def flush_often() -> None:
        while not stop.wait(FLUSH_EVERY_S):
            job_log.flush()

    flusher = threading.Thread(target=flush_often, name=f"job-log-{job_id[:8]}", daemon=True)
    flusher.start()
    try:
        yield job_log
    finally:
        stop.set()
        flusher.join(timeout=5)
        CURRENT.reset(token)
        job_log.flush(close=True)


def set_phase(phase: str) -> None:
    """Record the phase the current job is in (``loading data``, ``building``, ``epoch 3``, ``saving``)."""
    current = CURRENT.get()
    if current is not None and current.phase != phase:
        current.phase = phase
        log.info("phase: %s", phase)


def current_phase() -> str | None:
    """The phase of the job running in this context, if any."""
    current = CURRENT.get()
    return current.phase if current is not None else None


def flush_before_outcome() -> None:
    """Write the current job's lines before its outcome is recorded, and take no more after it."""
    current = CURRENT.get()
    if current is not None:
        current.flush(close=True)


def traceback_tail(exc: BaseException) -> str:
    """The end of the exception's traceback, where its type and text are (paths are removed as the line is kept)."""
    return "".join(traceback.format_exception(exc))[-MAX_TRACEBACK_CHARS:]


def failure_details(exc: BaseException, details: Any = None, phase: str | None = None) -> dict[str, Any]:
    """An error's ``details`` with the phase it failed in (``phase``, else the current job's; an unexpected error's
    traceback goes to the job's log)."""
    out: dict[str, Any] = dict(details) if isinstance(details, dict) else ({} if details is None else {"info": details})
    phase = phase if phase is not None else current_phase()
    if phase is not None:
        out["phase"] = phase
    return out
