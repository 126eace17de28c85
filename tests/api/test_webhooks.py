"""Webhooks on real parts: a receiver started by the test gets one signed POST per terminal state, from the
outbox (so a notification survives a stopped sender and a restart), with retries for a failing receiver;
internal addresses are refused at submit time and again at delivery time."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import update

from db.database import Database
from db.models import WebhookDelivery, utcnow
from db.webhooks import enqueue
from tensorq.core.errors import TensorQError
from tensorq.core.settings import Settings
from tensorq.core.webhook_signing import verify, verify_delivery
from tests.webhook_receivers import TestReceiver
from worker.context import HandlerResult, JobContext
from worker.runner import JobRunner
from worker.webhooks import WebhookSender

SPEC = {"architecture": "mlp", "dataset": "builtin:iris", "epochs": 1}


class Receiver:
    """A tiny HTTP server that records every POST and answers with the next planned status (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes, str]] = []
        self.statuses = list(statuses or [])
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, self.path))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.got.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def hooks(settings: Settings) -> Settings:
    """The test's settings, allowing the loopback receiver, with short backoffs."""
    settings.webhook_allowed_hosts = ["127.0.0.1"]
    settings.webhook_backoff_s = 0.05
    settings.webhook_timeout_s = 3.0
    return settings


@pytest.fixture
def secret(client, auth) -> str:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/webhook-secret", headers=auth)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["secret"]


def _submit(client, auth, url: str, **extra: object) -> dict:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/jobs", json={"type": "train", "spec": SPEC, "callback_url": url, **extra}, headers=auth)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()


def _ok(ctx: JobContext) -> HandlerResult:
    return HandlerResult({"model_id": "m", "version": 1, "metrics": {"accuracy": 1.0}, "history": {}})


def _broken(ctx: JobContext) -> HandlerResult:
    raise TensorQError("the job needed more memory than its worker allows", code="resource_exhausted")


def _signed(request: tuple[dict[str, str], bytes, str], secret: str) -> dict:
    headers, body, _ = request
    assert verify_delivery(secret, headers, body)
    assert not verify_delivery("whsec_wrong", headers, body)
    assert verify(secret, headers["tensorq-timestamp"], body, headers["tensorq-signature"])  # v1, for one release
    assert not verify("whsec_wrong", headers["tensorq-timestamp"], body, headers["tensorq-signature"])
    assert headers["content-type"] == "application/json"
    return json.loads(body)


def test_one_signed_post_per_terminal_state(client, auth, hooks, db: Database, receiver, secret) -> None:  # type: ignore[no-untyped-def]
    done = _submit(client, auth, receiver.url, name="nightly", tags=["x"])
    failed = _submit(client, auth, receiver.url)
    cancelled = _submit(client, auth, receiver.url)
    assert JobRunner(hooks, db, {"train": _ok}).run(done["id"]) == "succeeded"
    assert JobRunner(hooks, db, {"train": _broken}).run(failed["id"]) == "failed"
    assert client.post(f"/v1/jobs/{cancelled['id']}/cancel", headers=auth).status_code == 202
    sender = WebhookSender(hooks, db)
    assert len(sender.run_once().delivered) == 3
    assert sender.run_once().delivered == []  # each once
    by_job = {}
    for request in receiver.requests:
        record = _signed(request, secret)
        by_job[record["id"]] = (request[0], record)
    assert set(by_job) == {done["id"], failed["id"], cancelled["id"]}
    for job_id, (headers, record) in by_job.items():
        assert record == client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()
        assert headers["tensorq-event"] == f"job.{record['status']}"
        deliveries = client.get(f"/v1/jobs/{job_id}/webhooks", headers=auth).get_json()["deliveries"]
        assert [(d["id"], d["status"], d["attempts"]) for d in deliveries] == [
            (headers["tensorq-delivery"], "delivered", 1)
        ]
    assert by_job[done["id"]][1]["name"] == "nightly"
    assert by_job[failed["id"]][1]["status"] == "failed"
    assert all(path == "/hook" for _, _, path in receiver.requests)


def test_a_notification_survives_a_stopped_sender_and_a_restart(client, auth, hooks, db, receiver, secret) -> None:  # type: ignore[no-untyped-def]
    job = _submit(client, auth, receiver.url)
    sender = WebhookSender(hooks.model_copy(update={"webhook_interval_s": 0.1}), db)
    sender.start()
    sender.stop()  # the sender is down when the job ends
    assert JobRunner(hooks, db, {"train": _ok}).run(job["id"]) == "succeeded"
    time.sleep(0.3)
    assert receiver.requests == []
    db.dispose()  # the processes go away; the outbox row is all that is left
    restarted = Database(hooks)
    try:
        sender = WebhookSender(hooks.model_copy(update={"webhook_interval_s": 0.1}), restarted)
        sender.start()
        assert receiver.got.wait(10), "the notification never arrived after the restart"
        sender.stop()
    finally:
        restarted.dispose()
    (request,) = receiver.requests
    assert _signed(request, secret)["id"] == job["id"]


def test_a_failing_receiver_gets_retries_with_one_delivery_id(client, auth, hooks, db, receiver, secret) -> None:  # type: ignore[no-untyped-def]
    receiver.statuses = [500, 503, 302]
    job = _submit(client, auth, receiver.url)
    assert JobRunner(hooks, db, {"train": _ok}).run(job["id"]) == "succeeded"
    sender = WebhookSender(hooks, db)
    deadline = time.monotonic() + 10
    while len(receiver.requests) < 4 and time.monotonic() < deadline:
        sender.run_once()
        time.sleep(0.05)
    assert len(receiver.requests) == 4  # 500, 503, a redirect (not followed), then 200
    assert {headers["tensorq-delivery"] for headers, _, _ in receiver.requests} == {
        receiver.requests[0][0]["tensorq-delivery"]
    }
    assert all(path == "/hook" for _, _, path in receiver.requests)
    for request in receiver.requests:
        _signed(request, secret)
    (delivery,) = client.get(f"/v1/jobs/{job['id']}/webhooks", headers=auth).get_json()["deliveries"]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 4


def test_a_receiver_that_never_answers_2xx_is_given_up_on(client, auth, hooks, db, receiver, secret) -> None:  # type: ignore[no-untyped-def]
    hooks.webhook_max_attempts = 2
    hooks.webhook_backoff_s = 0.5
    receiver.statuses = [500] * 5
    job = _submit(client, auth, receiver.url)
    assert JobRunner(hooks, db, {"train": _ok}).run(job["id"]) == "succeeded"
    sender = WebhookSender(hooks, db)
    # the backoff holds it back
    assert sender.run_once().retrying
    assert not sender.run_once().given_up
    time.sleep(0.6)
    assert len(sender.run_once().given_up) == 1
    (delivery,) = client.get(f"/v1/jobs/{job['id']}/webhooks", headers=auth).get_json()["deliveries"]
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == ("failed", 2, "HTTP 500")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://127.0.0.1:9/hook", "callback_url_forbidden"),
        ("http://localhost/hook", "callback_url_forbidden"),
        ("http://[::1]/hook", "callback_url_forbidden"),
        ("http://169.254.169.254/latest/meta-data", "callback_url_forbidden"),
        ("https://10.1.2.3/hook", "callback_url_forbidden"),
        ("http://192.168.0.10/hook", "callback_url_forbidden"),
        ("http://[::ffff:127.0.0.1]/hook", "callback_url_forbidden"),
        ("http://0.0.0.0/hook", "callback_url_forbidden"),
        ("ftp://example.com/hook", "invalid_callback_url"),
        ("http://user:pw@example.com/hook", "invalid_callback_url"),
        ("file:///etc/passwd", "invalid_callback_url"),
        ("http://no-such-host.invalid/hook", "callback_url_unresolvable"),
        ("http://127.0.0.1/ok\r\nX: y", "invalid_callback_url"),
        ("http://example.com/a\tb", "invalid_callback_url"),
        ("http://example.com/a b\x7f", "invalid_callback_url"),
    ],
)
def test_an_internal_or_malformed_callback_url_is_refused_at_submit(client, auth, secret, url, code) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/jobs", json={"type": "train", "spec": SPEC, "callback_url": url}, headers=auth)
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["error"]["code"] == code
    batch = client.post("/v1/jobs", json={"jobs": [{"type": "train", "spec": SPEC, "callback_url": url}]}, headers=auth)
    assert batch.status_code == 422
    assert batch.get_json()["error"]["code"] == code


def test_an_address_allowed_at_submit_but_not_at_delivery_is_not_contacted(
    client, auth, hooks, db, receiver, secret
) -> None:  # type: ignore[no-untyped-def]
    job = _submit(client, auth, receiver.url)
    hooks.webhook_allowed_hosts = []  # the operator withdrew it before the job ended
    assert JobRunner(hooks, db, {"train": _ok}).run(job["id"]) == "succeeded"
    assert WebhookSender(hooks, db).run_once().retrying
    assert receiver.requests == []
    (delivery,) = client.get(f"/v1/jobs/{job['id']}/webhooks", headers=auth).get_json()["deliveries"]
    assert delivery["last_error"].startswith("callback_url_forbidden")


def test_the_signing_secret_is_shown_once_and_required(client, auth, hooks, db) -> None:  # type: ignore[no-untyped-def]
    refused = client.post(
        "/v1/jobs", json={"type": "train", "spec": SPEC, "callback_url": "http://127.0.0.1/h"}, headers=auth
    )
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "webhook_secret_missing"
    assert client.get("/v1/webhook-secret", headers=auth).get_json() == {"configured": False, "created_at": None}
    first = client.post("/v1/webhook-secret", headers=auth).get_json()
    assert first["secret"].startswith("whsec_")
    assert first["replaced"] is False
    state = client.get("/v1/webhook-secret", headers=auth).get_json()
    assert state["configured"] is True
    assert first["secret"] not in json.dumps(state)
    second = client.post("/v1/webhook-secret", headers=auth).get_json()
    assert second["replaced"] is True
    assert second["secret"] != first["secret"]
    read_only = {"Authorization": f"Bearer {db.keys.create('acme', read_only=True)}"}
    assert client.post("/v1/webhook-secret", headers=read_only).status_code == 403


def test_max_retries_is_bounded_and_copied_by_a_manual_retry(client, auth, hooks, db) -> None:  # type: ignore[no-untyped-def]
    too_many = client.post("/v1/jobs", json={"type": "train", "spec": SPEC, "max_retries": 11}, headers=auth)
    assert too_many.status_code in (400, 422)
    job = client.post("/v1/jobs", json={"type": "train", "spec": SPEC, "max_retries": 1}, headers=auth).get_json()
    assert (job["max_retries"], job["retry_number"]) == (1, 0)
    assert JobRunner(hooks, db, {"train": _broken}).run(job["id"]) == "failed"
    queued = client.get("/v1/jobs?status=queued", headers=auth).get_json()["jobs"]
    assert [(j["retry_of"], j["retry_number"]) for j in queued] == [(job["id"], 1)]
    assert JobRunner(hooks, db, {"train": _broken}).run(queued[0]["id"]) == "failed"
    again = client.post(f"/v1/jobs/{queued[0]['id']}/retry", headers=auth).get_json()
    assert (again["retry_of"], again["retry_number"], again["max_retries"]) == (queued[0]["id"], 2, 1)


def _tenant(client, db: Database, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The Authorization header of a second tenant that has a signing secret."""
    headers = {"Authorization": f"Bearer {db.keys.create(name)}"}
    assert client.post("/v1/webhook-secret", headers=headers).status_code == 201
    return headers


def _deliveries(db: Database, job_id: str):  # type: ignore[no-untyped-def]
    """The job's deliveries, whichever tenant it belongs to."""
    return db.webhooks.of_job(db.jobs.get_any(job_id).tenant_id, job_id)


def test_v2_signs_the_delivery_id_and_event_so_a_replay_under_a_new_id_fails(
    client, auth, hooks, db, receiver, secret
) -> None:  # type: ignore[no-untyped-def]
    job = _submit(client, auth, receiver.url)
    assert JobRunner(hooks, db, {"train": _ok}).run(job["id"]) == "succeeded"
    assert len(WebhookSender(hooks, db).run_once().delivered) == 1
    ((headers, body, _),) = receiver.requests
    assert headers["tensorq-signature-v2"].startswith("v2=")
    assert verify_delivery(secret, headers, body)
    replayed = {**headers, "tensorq-delivery": str(uuid.uuid4())}  # past the receiver's dedupe
    assert not verify_delivery(secret, replayed, body)
    assert verify(secret, headers["tensorq-timestamp"], body, headers["tensorq-signature"])  # v1 cannot tell
    assert not verify_delivery(secret, {**headers, "tensorq-event": "job.failed"}, body)
    v1_only = {k: v for k, v in headers.items() if k != "tensorq-signature-v2"}
    assert not verify_delivery(secret, v1_only, body)  # stripping v2 does not fall back to v1
    assert verify_delivery(secret, v1_only, body, allow_v1=True)  # an older release's sender, when allowed


def test_slow_and_hanging_receivers_hold_back_only_their_own_tenant(client, auth, hooks, db, secret) -> None:  # type: ignore[no-untyped-def]
    hooks.webhook_timeout_s = 2.0
    hooks.webhook_interval_s = 0.2
    hooks.webhook_backoff_s = 60.0  # one attempt each within the test
    slow = [TestReceiver("drip_body", drip_s=0.3), TestReceiver("drip_head", drip_s=0.3)]
    slow += [TestReceiver("hang") for _ in range(4)]
    good = TestReceiver("ok")
    sender = WebhookSender(hooks, db)
    try:
        slow_jobs = [_submit(client, auth, r.url)["id"] for r in slow]
        other = _submit(client, _tenant(client, db, "globex"), good.url)["id"]
        for job_id in [*slow_jobs, other]:  # acme's end first: their deliveries are due first
            assert JobRunner(hooks, db, {"train": _ok}).run(job_id) == "succeeded"
        started = time.monotonic()
        sender.start()
        assert good.contacted.wait(10)
        arrived = good.arrived(other)
        assert arrived is not None
        assert arrived - started < 1.5, "another tenant's notification waited behind acme's receivers"

        def attempted(job_id: str) -> bool:
            (delivery,) = _deliveries(db, job_id)
            return delivery.last_error is not None or delivery.status == "delivered"

        deadline = started + 2 * (hooks.webhook_timeout_s + 1.5)  # two rounds of acme's 2 slots
        while not all(attempted(j) for j in slow_jobs[:4]) and time.monotonic() < deadline:
            time.sleep(0.05)
        drip_body, drip_head, hang = (_deliveries(db, j)[0] for j in slow_jobs[:3])
        assert drip_body.status == "delivered"  # it answered 200; the rest of its body is not waited for
        assert (drip_head.last_error or "").startswith("timeout")
        assert (hang.last_error or "").startswith("timeout")
        assert max(len(r.arrivals) for r in slow) == 1
    finally:
        sender.stop()
        for r in [*slow, good]:
            r.stop()


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_huge_answer_is_not_read(client, auth, hooks, db, secret) -> None:  # type: ignore[no-untyped-def]
    huge = TestReceiver("huge", huge_bytes=400 << 20)
    try:
        job = _submit(client, auth, huge.url)
        assert JobRunner(hooks, db, {"train": _ok}).run(job["id"]) == "succeeded"
        sender = WebhookSender(hooks, db)
        before = _rss_mib()
        tracemalloc.start()
        try:
            report = sender.run_once()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(report.delivered) == 1  # a 200: only the status counts
        assert peak < 8 << 20, f"{peak / 2**20:.1f} MiB allocated while a 400 MiB answer was offered"
        assert _rss_mib() - before < 64
        sender.stop()
    finally:
        huge.stop()


def test_a_poisoned_row_fails_alone_and_is_given_up(client, auth, hooks, db, receiver, secret) -> None:  # type: ignore[no-untyped-def]
    hooks.webhook_max_attempts = 2
    job = _submit(client, auth, receiver.url)
    assert JobRunner(hooks, db, {"train": _ok}).run(job["id"]) == "succeeded"
    (good,) = _deliveries(db, job["id"])
    record = db.jobs.get_any(job["id"])
    earlier = utcnow() - timedelta(minutes=1)  # due before the good row: they come first in the pass
    with db.engine.begin() as conn:  # rows a sender must survive, written past the API's checks
        crlf = enqueue(conn, replace(record, callback_url=receiver.url + "\r\nX: y"), earlier)
        unreadable = enqueue(conn, record, earlier)
        conn.execute(update(WebhookDelivery).where(WebhookDelivery.id == unreadable).values(record="{not json"))
    sender = WebhookSender(hooks, db)
    first = sender.run_once()
    assert first.delivered == [good.id]
    assert sorted(first.retrying) == sorted([crlf, unreadable])
    assert [headers["tensorq-delivery"] for headers, _, _ in receiver.requests] == [good.id]
    time.sleep(0.2)  # past the backoff
    assert sorted(sender.run_once().given_up) == sorted([crlf, unreadable])
    assert sender.run_once().given_up == []  # bounded: never tried again
    rows = {d.id: d for d in _deliveries(db, job["id"])}
    assert (rows[crlf].status, rows[crlf].attempts) == ("failed", 2)
    assert (rows[crlf].last_error or "").startswith("invalid_callback_url")
    assert (rows[unreadable].status, rows[unreadable].attempts) == ("failed", 2)
    assert (rows[unreadable].last_error or "").startswith("internal: ")
    assert (rows[good.id].status, rows[good.id].attempts) == ("delivered", 1)


def test_a_manual_retry_of_an_early_job_continues_the_chains_budget(client, auth, hooks, db) -> None:  # type: ignore[no-untyped-def]
    first = client.post("/v1/jobs", json={"type": "train", "spec": SPEC, "max_retries": 2}, headers=auth).get_json()
    chain = [first["id"]]
    while True:  # the first run and its two automatic retries all fail
        assert JobRunner(hooks, db, {"train": _broken}).run(chain[-1]) == "failed"
        queued = client.get("/v1/jobs?status=queued", headers=auth).get_json()["jobs"]
        if not queued:
            break
        chain.append(queued[0]["id"])
    assert [db.jobs.get_any(j).retry_number for j in chain] == [0, 1, 2]
    # Retrying the chain's first job numbers on from the chain's last retry: its budget is used, so one more
    # run and no automatic retry after it (not two more).
    again = client.post(f"/v1/jobs/{chain[0]}/retry", headers=auth).get_json()
    assert (again["retry_of"], again["retry_number"]) == (chain[0], 3)
    assert JobRunner(hooks, db, {"train": _broken}).run(again["id"]) == "failed"
    assert client.get("/v1/jobs?status=queued", headers=auth).get_json()["jobs"] == []
    # A retry of a job in the middle, and of the manual retry, number on from the whole chain too.
    middle = client.post(f"/v1/jobs/{chain[1]}/retry", headers=auth).get_json()
    assert middle["retry_number"] == 4
    tenant = db.jobs.get_any(chain[0]).tenant_id
    assert db.jobs.chain_retries(tenant, again["id"]) == db.jobs.chain_retries(tenant, chain[0]) == 4
    assert db.jobs.chain_retries("another tenant", chain[0]) == 0
