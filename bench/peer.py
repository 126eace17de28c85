"""The peer: the job service a team would write instead of TensorQ with the same packages, kept minimal and fair.

A Flask API inserts a row per job with SQLAlchemy and publishes a Celery task; the worker marks the row
running, calls the same tiny model directly (``ml.inference``, as TensorQ's worker does) and stores the result;
clients poll ``GET /jobs/<id>``. No auth, quotas, events, leases, outbox or idempotency: the floor of "a job in
SQL behind an HTTP API". The bench serves the API with ``tensorq api``'s gunicorn options and runs the worker
as ``celery -A bench.peer:celery worker --pool=prefork -c 1``, on the bench's database and Redis (its own db number).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from flask import Flask, abort, jsonify, request
from sqlalchemy import JSON, DateTime, String, create_engine, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

DATABASE_ENV, BROKER_ENV = "BENCH_PEER_DATABASE", "BENCH_PEER_BROKER"
QUEUE = "bench_peer"


class Base(DeclarativeBase):
    """The peer's one table."""


class PeerJob(Base):
    """A job: its inputs, status and result."""

    __tablename__ = "peer_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(500))
    inputs: Mapped[Any] = mapped_column(JSON)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


engine = create_engine(os.environ.get(DATABASE_ENV, "sqlite://"), pool_pre_ping=True)
celery = Celery("bench_peer", broker=os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/2"))
celery.conf.update(  # TensorQ's Celery settings: JSON, late acks, one message at a time
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
app = Flask("bench.peer")


def create_table(url: str) -> None:
    """Create ``peer_jobs`` in the database at ``url`` (before the peer's processes start)."""
    Base.metadata.create_all(create_engine(url))


def _now() -> datetime:
    return datetime.now(UTC)


def _public(job: PeerJob) -> dict[str, Any]:
    return {"id": job.id, "status": job.status, "result": job.result}


@app.post("/jobs")
def submit():  # type: ignore[no-untyped-def]
    """Insert the job as queued, publish its task, answer 202."""
    body = request.get_json()
    job = PeerJob(
        id=str(uuid.uuid4()),
        status="queued",
        model=body["model"],
        inputs=body["inputs"],
        created_at=_now(),
        updated_at=_now(),
    )
    with Session(engine) as session, session.begin():
        session.add(job)
        answer = _public(job)
    predict.delay(answer["id"])
    return jsonify(answer), 202


@app.get("/jobs/<job_id>")
def read(job_id: str):  # type: ignore[no-untyped-def]
    """The job as it is."""
    with Session(engine) as session:
        job = session.get(PeerJob, job_id)
        if job is None:
            abort(404)
        return jsonify(_public(job))


@celery.task(name="bench.peer.predict")
def predict(job_id: str) -> None:
    """Mark the job running, predict with the model, store the result."""
    from ml.inference import coerce_inputs, load_model
    from ml.inference import predict as run

    with Session(engine) as session, session.begin():
        job = session.get(PeerJob, job_id)
        assert job is not None
        job.status, job.updated_at = "running", _now()
        path, inputs = job.model, job.inputs
    model = load_model(path)  # cached per process, as TensorQ's worker does
    outputs = run(model, coerce_inputs(model, inputs)).tolist()
    with Session(engine) as session, session.begin():
        done = {"status": "succeeded", "result": {"outputs": outputs}, "updated_at": _now()}
        session.execute(update(PeerJob).where(PeerJob.id == job_id).values(**done))
