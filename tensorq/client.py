"""A small Python client for the TensorQ HTTP API (imports neither Flask nor TensorFlow)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class TensorQHTTPError(Exception):
    """An error answer from the API, with its status, code, message and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class TensorQClient:
    """Submits jobs, waits on them with long-polls, and fetches datasets, models and artifacts."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0, transport: Any = None) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> TensorQClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": response.text[:200]}
            raise TensorQHTTPError(response.status_code, error.get("code"), error.get("message"), error.get("details"))
        return response

    def submit(
        self, job_type: str, spec: dict[str, Any], *, idempotency_key: str | None = None, **options: Any
    ) -> dict:
        """Submit a job (``train``, ``predict`` or ``explain``); returns it as queued."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", "/v1/jobs", json={"type": job_type, "spec": spec, **options}, headers=headers).json()

    def job(self, job_id: str, *, wait: float | None = None, until_finished: bool = False) -> dict:
        """The job now, or after its next change within ``wait`` seconds (with ``until_finished``: its end)."""
        params: dict[str, Any] = {"wait": wait} if wait else {}
        if wait and until_finished:
            params["until"] = "finished"
        timeout = (wait or 0) + 30
        return self._call("GET", f"/v1/jobs/{job_id}", params=params or None, timeout=timeout).json()

    def wait(self, job_id: str, *, timeout: float = 3600.0, poll: float = 20.0, on_update: Any = None) -> dict:
        """Long-poll until the job ends; ``on_update(job)`` sees every change. Raises TimeoutError.

        Without ``on_update`` each long-poll asks for the end only (``until=finished``): one request
        per ``poll`` seconds however often the job changes.
        """
        deadline = time.monotonic() + timeout
        job = self.job(job_id)
        while job["status"] not in TERMINAL:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            job = self.job(job_id, wait=min(poll, max(remaining, 0.1)), until_finished=on_update is None)
            if on_update is not None:
                on_update(job)
        return job

    def run(self, job_type: str, spec: dict[str, Any], *, timeout: float = 3600.0, **options: Any) -> dict:
        """Submit and wait; returns the finished job."""
        return self.wait(self.submit(job_type, spec, **options)["id"], timeout=timeout)

    def jobs(self, **filters: Any) -> dict:
        """A page of the caller's jobs (filters: status, type, limit, cursor)."""
        return self._call("GET", "/v1/jobs", params=filters).json()

    def cancel(self, job_id: str) -> dict:
        """Cancel a queued or running job."""
        return self._call("POST", f"/v1/jobs/{job_id}/cancel").json()

    def events(self, job_id: str) -> list[dict]:
        """The job's events in order."""
        return self._call("GET", f"/v1/jobs/{job_id}/events").json()["events"]

    def artifact(self, job_id: str, name: str) -> bytes:
        """The bytes of one of the job's artifacts."""
        return self._call("GET", f"/v1/jobs/{job_id}/artifacts/{name}").content

    def upload_dataset(self, path: str | Path, name: str | None = None) -> dict:
        """Upload an ``.npz`` or ``.csv`` dataset."""
        path = Path(path)
        with path.open("rb") as handle:
            files = {"file": (path.name, handle, "application/octet-stream")}
            return self._call("POST", "/v1/datasets", files=files, data={"name": name or path.name}).json()

    def upload_model(self, path: str | Path, name: str | None = None) -> dict:
        """Upload a ``.keras`` model; returns its ``import`` job (``wait`` on it for the registered version)."""
        path = Path(path)
        with path.open("rb") as handle:
            files = {"file": (path.name, handle, "application/octet-stream")}
            data = {"name": name} if name else None
            return self._call("POST", "/v1/models", files=files, data=data).json()

    def datasets(self) -> list[dict]:
        """The caller's datasets."""
        return self._call("GET", "/v1/datasets").json()["datasets"]

    def models(self) -> list[dict]:
        """The caller's models."""
        return self._call("GET", "/v1/models").json()["models"]

    def model(self, model_id: str) -> dict:
        """One model with its versions."""
        return self._call("GET", f"/v1/models/{model_id}").json()

    def download_model(self, model_id: str, dest: str | Path, version: int | None = None) -> Path:
        """Save a model version's ``.keras`` file to ``dest``."""
        params = {"version": version} if version else None
        dest = Path(dest)
        dest.write_bytes(self._call("GET", f"/v1/models/{model_id}/download", params=params).content)
        return dest
