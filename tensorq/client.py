"""The typed Python client for the TensorQ HTTP API (httpx and the standard library only).

Every call returns a dataclass from ``tensorq.client_types`` (``Job``, ``JobPage``, ``Event``, ``Dataset``,
``Model``) and raises a class of ``tensorq.client_errors`` (one per error code). Answers ``429`` and ``503``
are retried after their ``Retry-After`` (bounded: ``retries`` times, each wait at most ``max_retry_wait``).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tensorq.client_errors import (
    APIError,
    JobWaitTimeout,
    TensorQClientError,
    TransportError,
    error_for,
)
from tensorq.client_types import (
    TERMINAL,
    Dataset,
    Deleted,
    Event,
    Job,
    JobPage,
    LogLine,
    LogPage,
    Model,
    ModelEvent,
    Queue,
    WebhookDelivery,
    WebhookSecret,
    Worker,
)
from tensorq.client_uploads import PartUploader

__all__ = [
    "TERMINAL",
    "WebhookDelivery",
    "WebhookSecret",
    "APIError",
    "Dataset",
    "Event",
    "Job",
    "JobPage",
    "JobWaitTimeout",
    "LogLine",
    "LogPage",
    "Deleted",
    "Model",
    "ModelEvent",
    "Queue",
    "Worker",
    "TensorQClient",
    "TensorQClientError",
    "TensorQHTTPError",
    "TransportError",
]

# The name earlier releases raised; every API error is still one.
TensorQHTTPError = APIError
RETRIED_STATUSES = frozenset({429, 503})
# Files larger than this are uploaded in parts, resumably (``/v1/datasets/uploads``).
CHUNKED_BYTES = 32 * 1024 * 1024


def retry_after_seconds(value: str | None, default: float = 1.0) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return default
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def raise_for_error(response: httpx.Response) -> None:
    """Raise the client error class for an error answer (status >= 400)."""
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message, details = str(error["code"]), str(error.get("message", "")), error.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = "http_error", response.text[:200], None
    retry_after = response.headers.get("Retry-After")
    raise error_for(
        response.status_code, code, message, details, retry_after_seconds(retry_after) if retry_after else None
    )


class TensorQClient:
    """Submits jobs, waits on them with long-polls, and fetches datasets, models and artifacts."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 3,
        max_retry_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._sleep = sleep

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> TensorQClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; 429 and 503 are retried after their Retry-After, other errors raised by code."""
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise TransportError(f"{method} {path}: {exc}") from exc
            if response.status_code not in RETRIED_STATUSES or attempt >= self.retries:
                raise_for_error(response)
                return response
            attempt += 1
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            self._sleep(min(wait, self.max_retry_wait))

    def submit(
        self,
        job_type: str,
        spec: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        timeout_s: int | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        callback_url: str | None = None,
        max_retries: int | None = None,
        wait: float | None = None,
    ) -> Job:
        """Submit a job (``train``, ``predict`` or ``explain``), optionally named and tagged, with a webhook
        ``callback_url`` and an automatic retry policy (``max_retries``); returns it queued, or with ``wait``
        (seconds) as it is once it has finished or the wait is over (one request: submit and long-poll)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        options: dict[str, Any] = {"priority": priority, "max_attempts": max_attempts, "timeout_s": timeout_s}
        options.update({"name": name, "tags": tags, "callback_url": callback_url, "max_retries": max_retries})
        body = {"type": job_type, "spec": spec, **{k: v for k, v in options.items() if v is not None}}
        call: dict[str, Any] = {"params": {"wait": wait}, "timeout": wait + 30} if wait else {}
        return Job.from_dict(self._call("POST", "/v1/jobs", json=body, headers=headers, **call).json())

    def submit_many(self, jobs: Sequence[Mapping[str, Any]], *, idempotency_key: str | None = None) -> list[Job]:
        """Submit a batch in one request: each item is a submission body (``{"type", "spec", "priority"?,
        "max_attempts"?, "timeout_s"?}``); all are queued or none (a bad one's index is in the error's details).
        Returns the jobs in the order given."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"jobs": [dict(job) for job in jobs]}
        answer = self._call("POST", "/v1/jobs", json=body, headers=headers).json()
        return [Job.from_dict(job) for job in answer["jobs"]]

    def submit_group(
        self,
        jobs: Sequence[Mapping[str, Any]],
        parent: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> tuple[Job, list[Job]]:
        """Submit a batch as the children of one new parent job (``parent``: its ``name``, ``tags``,
        ``priority``, ``callback_url`` and ``max_failed_children``; without it the parent fails fast); wait on
        the parent alone. Returns the parent and its children, in the order given."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {"jobs": [dict(job) for job in jobs], "parent": dict(parent or {})}
        answer = self._call("POST", "/v1/jobs", json=body, headers=headers).json()
        return Job.from_dict(answer["parent"]), [Job.from_dict(job) for job in answer["jobs"]]

    def job(self, job_id: str, *, wait: float | None = None, until_finished: bool = False) -> Job:
        """The job now, or after its next change within ``wait`` seconds (with ``until_finished``: its end)."""
        params: dict[str, Any] = {"wait": wait} if wait else {}
        if wait and until_finished:
            params["until"] = "finished"
        timeout = (wait or 0) + 30
        return Job.from_dict(self._call("GET", f"/v1/jobs/{job_id}", params=params or None, timeout=timeout).json())

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 3600.0,
        poll: float = 20.0,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """Long-poll until the job ends; ``on_update(job)`` sees every change. Raises ``JobWaitTimeout``.

        Without ``on_update`` each long-poll asks for the end only (``until=finished``): one request
        per ``poll`` seconds however often the job changes.
        """
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        if on_update is not None:
            on_update(job)
        while not job.finished:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobWaitTimeout(f"job {job_id} still {job.status} after {timeout} s")
            job = self.job(job_id, wait=min(poll, max(remaining, 0.1)), until_finished=on_update is None)
            if on_update is not None:
                on_update(job)
        return job

    def run(
        self, job_type: str, spec: dict[str, Any], *, timeout: float = 3600.0, poll: float = 20.0, **options: Any
    ) -> Job:
        """Submit and wait; returns the finished job. The submission itself waits up to ``poll`` seconds (a
        short job's result comes back in that one request), then long-polls as ``wait`` does."""
        start = time.monotonic()
        job = self.submit(job_type, spec, wait=min(poll, timeout), **options)
        if job.finished:
            return job
        return self.wait(job.id, timeout=max(timeout - (time.monotonic() - start), 0.1), poll=poll)

    def jobs(
        self,
        *,
        status: str | None = None,
        type: str | None = None,  # the API's own filter name
        limit: int | None = None,
        cursor: str | None = None,
        fields: str | None = None,
        name: str | None = None,
        tag: str | None = None,
        parent: str | None = None,
    ) -> JobPage:
        """A page of the caller's jobs, newest first (filters: status, type, name, tag, ``parent``: the children
        of that job; paging: limit, cursor); summaries without spec and result unless ``fields`` asks ("spec",
        "result", "spec,result" or "all")."""
        params = {"status": status, "type": type, "limit": limit, "cursor": cursor, "fields": fields}
        params.update({"name": name, "tag": tag, "parent": parent})
        page = self._call("GET", "/v1/jobs", params={k: v for k, v in params.items() if v is not None})
        return JobPage.from_dict(page.json())

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (a running one stops at its next batch or epoch)."""
        return Job.from_dict(self._call("POST", f"/v1/jobs/{job_id}/cancel").json())

    def retry(self, job_id: str) -> Job:
        """Submit a failed or cancelled job's spec again; the new job's ``retry_of`` is ``job_id`` (a parent is
        reopened instead, and only its failed or cancelled children run again)."""
        return Job.from_dict(self._call("POST", f"/v1/jobs/{job_id}/retry").json())

    def delete_job(self, job_id: str) -> Deleted:
        """Delete a finished job with its events, logs and artifacts."""
        return Deleted.from_dict(self._call("DELETE", f"/v1/jobs/{job_id}").json())

    def webhook_deliveries(self, job_id: str) -> list[WebhookDelivery]:
        """The job's webhook deliveries (status, attempts, last error), oldest first."""
        answer = self._call("GET", f"/v1/jobs/{job_id}/webhooks").json()
        return [WebhookDelivery.from_dict(d) for d in answer["deliveries"]]

    def rotate_webhook_secret(self) -> WebhookSecret:
        """Create or rotate the tenant's webhook signing secret; the answer is the only time it is shown."""
        return WebhookSecret.from_dict(self._call("POST", "/v1/webhook-secret").json())

    def events(self, job_id: str) -> list[Event]:
        """The job's events in order."""
        return [Event.from_dict(e) for e in self._call("GET", f"/v1/jobs/{job_id}/events").json()["events"]]

    def logs(self, job_id: str, *, after: int = 0, limit: int | None = None, wait: float | None = None) -> LogPage:
        """The job's log lines after ``after`` (a ``seq``); with ``wait``, held until a new line or the end."""
        params: dict[str, Any] = {"after": after}
        if limit is not None:
            params["limit"] = limit
        if wait:
            params["wait"] = wait
        answer = self._call("GET", f"/v1/jobs/{job_id}/logs", params=params, timeout=(wait or 0) + 30)
        return LogPage.from_dict(answer.json())

    def follow_logs(self, job_id: str, *, after: int = 0, poll: float = 25.0) -> Iterator[LogLine]:
        """Every log line of the job from ``after`` on, as they come, until the job has finished."""
        while True:
            page = self.logs(job_id, after=after, wait=poll)
            yield from page.lines
            after = page.next_after
            if page.finished and not page.lines:
                return

    def artifact(self, job_id: str, name: str) -> bytes:
        """The bytes of one of the job's artifacts."""
        return self._call("GET", f"/v1/jobs/{job_id}/artifacts/{name}").content

    def upload_dataset(
        self,
        path: str | Path,
        name: str | None = None,
        *,
        chunked: bool | None = None,
        resume: str | None = None,
        direct: bool = True,
        checksum: bool = True,
        on_part: Callable[[int, int], None] | None = None,
        on_session: Callable[[str], None] | None = None,
    ) -> Dataset:
        """Upload an ``.npz``, ``.csv``, ``.parquet`` or ``.jsonl`` dataset (told apart by content). A file over
        ``CHUNKED_BYTES`` (or ``chunked=True``) goes as a resumable upload in parts (see ``upload_in_parts``);
        ``resume`` continues the upload of that id."""
        path = Path(path)
        if resume is not None or chunked or (chunked is None and path.stat().st_size > CHUNKED_BYTES):
            return self.upload_in_parts(
                path, name, resume=resume, direct=direct, checksum=checksum, on_part=on_part, on_session=on_session
            )
        files = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
        return Dataset.from_dict(
            self._call("POST", "/v1/datasets", files=files, data={"name": name or path.name}).json()
        )

    def upload_in_parts(
        self,
        path: str | Path,
        name: str | None = None,
        *,
        resume: str | None = None,
        direct: bool = True,
        checksum: bool = True,
        on_part: Callable[[int, int], None] | None = None,
        on_session: Callable[[str], None] | None = None,
    ) -> Dataset:
        """Upload ``path`` in parts (one in memory at a time), straight to the object store when the server
        presigns (and ``direct``), else through the API; ``resume`` sends only the parts upload ``resume``
        lacks. ``on_session(upload_id)`` is told the id first (to resume after a crash). With ``checksum`` the
        server checks the file's sha256 at completion (on S3 that reads the object once more)."""
        path = Path(path)
        uploader = PartUploader(self._call, direct=direct, checksum=checksum)
        session = uploader.session(resume) if resume is not None else uploader.start(path, name)
        if on_session is not None:
            on_session(session["id"])
        if session["status"] != "completed":
            uploader.send(path, session, on_part)
        return Dataset.from_dict(uploader.complete(session["id"]))

    def abort_upload(self, upload_id: str) -> None:
        """Abort a resumable upload and remove its parts."""
        self._call("DELETE", f"/v1/datasets/uploads/{upload_id}")

    def upload_model(self, path: str | Path, name: str | None = None) -> Job:
        """Upload a ``.keras`` model; returns its ``import`` job (``wait`` on it for the registered version)."""
        path = Path(path)
        files = {"file": (path.name, path.read_bytes(), "application/octet-stream")}
        data = {"name": name} if name else None
        return Job.from_dict(self._call("POST", "/v1/models", files=files, data=data).json())

    def datasets(self) -> list[Dataset]:
        """The caller's datasets."""
        return [Dataset.from_dict(d) for d in self._call("GET", "/v1/datasets").json()["datasets"]]

    def dataset(self, dataset_id: str) -> Dataset:
        """One dataset, with its inferred schema and first rows."""
        return Dataset.from_dict(self._call("GET", f"/v1/datasets/{dataset_id}").json())

    def delete_dataset(self, dataset_id: str) -> Deleted:
        """Delete a dataset and its file (refused while a queued or running job reads it)."""
        return Deleted.from_dict(self._call("DELETE", f"/v1/datasets/{dataset_id}").json())

    def models(self) -> list[Model]:
        """The caller's models."""
        return [Model.from_dict(m) for m in self._call("GET", "/v1/models").json()["models"]]

    def model(self, model_id: str) -> Model:
        """One model with its versions."""
        return Model.from_dict(self._call("GET", f"/v1/models/{model_id}").json())

    def delete_model(self, ref: str) -> Deleted:
        """Delete a model (``"churn"``) or one version (``"churn:3"``, ``"churn@production"``) with its files."""
        return Deleted.from_dict(self._call("DELETE", f"/v1/models/{quote(ref, safe=':@')}").json())

    def set_alias(self, model: str, alias: str, version: int) -> Model:
        """Point ``alias`` of ``model`` (its id or name) at ``version``; the change is recorded."""
        path = f"/v1/models/{quote(model, safe='')}/aliases/{quote(alias, safe='')}"
        return Model.from_dict(self._call("PUT", path, json={"version": version}).json())

    def delete_alias(self, model: str, alias: str) -> Model:
        """Remove ``alias`` from ``model``."""
        path = f"/v1/models/{quote(model, safe='')}/aliases/{quote(alias, safe='')}"
        return Model.from_dict(self._call("DELETE", path).json())

    def model_events(self, model: str) -> list[ModelEvent]:
        """The model's registry history: aliases set, moved and removed, versions deleted."""
        answer = self._call("GET", f"/v1/models/{quote(model, safe='')}/events").json()
        return [ModelEvent.from_dict(e) for e in answer["events"]]

    def download_model(self, model_id: str, dest: str | Path, version: int | None = None) -> Path:
        """Save a model version's ``.keras`` file to ``dest``."""
        params = {"version": version} if version else None
        dest = Path(dest)
        dest.write_bytes(self._call("GET", f"/v1/models/{model_id}/download", params=params).content)
        return dest

    def workers(self) -> list[Worker]:
        """The live workers (any key may ask; another tenant's job ids are not shown)."""
        return [Worker.from_dict(w) for w in self._call("GET", "/v1/workers").json()["workers"]]

    def queues(self) -> list[Queue]:
        """Each queue's depth, running jobs, oldest queued age and live workers."""
        return [Queue.from_dict(q) for q in self._call("GET", "/v1/queues").json()["queues"]]
