"""The webhook sender: delivers the outbox's notifications, signed, at least once, with exponential backoff.

A dispatcher thread in every worker child (next to the reaper, never the thread that runs jobs) reads the
outbox every ``webhook_interval_s``, and as soon as a send ends, and hands due deliveries to a small pool of
sender threads: at most ``webhook_concurrency`` at once, and at most ``webhook_tenant_concurrency`` of one
tenant, so a tenant whose receivers hang holds its own slots only. Each attempt claims its delivery with a
conditional UPDATE (two senders never send one delivery at the same time), re-resolves and re-checks the
callback host, connects to the address it checked, follows no redirect, ends by ``webhook_timeout_s`` whatever
the receiver drips, and reads at most 64 KiB of the answer (``worker/webhook_http.py``). A 2xx answer
delivers; anything else, an exception while building or sending that one delivery included, is its failed
attempt, retried after ``webhook_backoff_s`` doubling up to ``webhook_backoff_max_s``, until
``webhook_max_attempts`` attempts were made."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import httpcore
import httpx

from api.present import notification
from db.database import Database
from db.models import utcnow
from db.webhooks import Delivery
from tensorq.core import __version__
from tensorq.core.errors import TensorQError
from tensorq.core.settings import Settings
from tensorq.core.webhook_signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_V2_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signature_v2,
)
from tensorq.core.webhook_targets import AllowList, check_target
from worker import webhook_http

log = logging.getLogger(__name__)
KEEP_FINISHED = timedelta(days=7)  # delivered and given-up rows are purged after this
PURGE_EVERY_S = 3600.0
REDIRECTS = frozenset({301, 302, 303, 307, 308})
Outcome = Literal["delivered", "retrying", "given_up"]
Sent = Future[tuple[str, Outcome | None]]  # a send's delivery id and outcome (None: another sender had it)


@dataclass
class SendReport:
    """What one pass of the sender did, by delivery id."""

    delivered: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)


def backoff_s(settings: Settings, attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt: base, 2 base, 4 base, ... capped."""
    return min(settings.webhook_backoff_s * 2 ** max(attempts - 1, 0), settings.webhook_backoff_max_s)


class WebhookSender:
    """Sends due deliveries from the outbox, concurrently, within per-tenant limits."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._pool = webhook_http.new_pool()
        self._threads = ThreadPoolExecutor(settings.webhook_concurrency, thread_name_prefix="tensorq-webhook-send")
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()  # sends under way, by tenant
        self._futures: set[Sent] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._purged_at = 0.0
        # A claim outlives its attempt (bounded by the deadline) and the DNS lookup before it.
        self._hold_s = settings.webhook_timeout_s + 30.0

    def dispatch(self, limit: int | None = None, skip: Collection[str] = ()) -> list[Sent]:
        """Start sending the due deliveries that fit the free slots (at most ``limit``, none of ``skip``), each
        in a sender thread; returns at once with their futures."""
        per_tenant = self.settings.webhook_tenant_concurrency
        with self._lock:
            busy = dict(self._in_flight)
        free = self.settings.webhook_concurrency - sum(busy.values())
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return []
        full = [tenant for tenant, count in busy.items() if count >= per_tenant]
        # Rows of partly busy tenants may be passed over below: read enough that ``free`` others can still fill.
        rows = self.db.webhooks.due(free + sum(busy.values()) + len(skip), per_tenant, full)
        started: list[Sent] = []
        for delivery_id, tenant_id in rows:
            if len(started) >= free:
                break
            if delivery_id in skip:
                continue
            with self._lock:
                if self._in_flight[tenant_id] >= per_tenant:
                    continue
                self._in_flight[tenant_id] += 1
            try:
                future = self._threads.submit(self._send, delivery_id, tenant_id)
            except RuntimeError:  # the sender is stopping
                with self._lock:
                    self._in_flight[tenant_id] -= 1
                break
            with self._lock:
                self._futures.add(future)
            future.add_done_callback(self._forget)
            started.append(future)
        return started

    def run_once(self, limit: int = 50) -> SendReport:
        """One pass: every due delivery (up to ``limit``) gets one attempt, within the concurrency limits;
        returns when all of them ended."""
        report = SendReport()
        tried: set[str] = set()
        while len(tried) < limit and (wave := self.dispatch(limit - len(tried), tried)):
            for future in wave:
                delivery_id, outcome = future.result()
                tried.add(delivery_id)
                if outcome is not None:
                    getattr(report, outcome).append(delivery_id)
        self._purge()
        return report

    def _forget(self, future: Sent) -> None:
        with self._lock:
            self._futures.discard(future)

    def _send(self, delivery_id: str, tenant_id: str) -> tuple[str, Outcome | None]:
        """One attempt of one delivery, in a sender thread; its slot is freed and the dispatcher woken after."""
        try:
            return delivery_id, self._deliver(delivery_id)
        except Exception:  # noqa: BLE001 - the database failed around the attempt: the claim lapses, it goes again
            log.warning("webhook %s: recording the attempt failed", delivery_id, exc_info=True)
            return delivery_id, None
        finally:
            with self._lock:
                self._in_flight[tenant_id] -= 1
                if self._in_flight[tenant_id] <= 0:
                    del self._in_flight[tenant_id]
            self._wake.set()

    def _deliver(self, delivery_id: str) -> Outcome | None:
        """Claim, attempt and record one delivery; None when another sender had it."""
        delivery = self.db.webhooks.claim(delivery_id, self._hold_s)
        if delivery is None:
            return None
        try:
            error = self._attempt(delivery)
        except Exception as exc:  # noqa: BLE001 - a row that cannot be built or sent fails alone, counted
            log.warning("webhook %s could not be sent", delivery.id, exc_info=True)
            error = f"internal: {type(exc).__name__}: {exc}"[:300]
        if error is None:
            self.db.webhooks.delivered(delivery.id)
            return "delivered"
        last = delivery.attempts >= self.settings.webhook_max_attempts
        retry_in = None if last else backoff_s(self.settings, delivery.attempts)
        self.db.webhooks.attempt_failed(delivery.id, error, retry_in)
        log.warning(
            "webhook %s of job %s, attempt %d: %s%s",
            delivery.id,
            delivery.job_id,
            delivery.attempts,
            error,
            "; giving up" if retry_in is None else f"; next attempt in {retry_in:.0f} s",
        )
        return "given_up" if last else "retrying"

    def _attempt(self, delivery: Delivery) -> str | None:
        """POST the delivery once; None when the receiver acknowledged it, else why not."""
        secret = self.db.webhooks.secret(delivery.tenant_id)
        if secret is None:
            return "the tenant has no webhook signing secret"
        try:
            target = check_target(delivery.url, AllowList.parse(self.settings.webhook_allowed_hosts))
        except TensorQError as exc:
            return f"{exc.code}: {exc.message}"
        body = notification(delivery.job)
        timestamp = str(int(time.time()))
        url = httpx.URL(delivery.url)
        headers = {
            # Connect to the address just checked, never to a second lookup's answer; the Host header and TLS's
            # server name stay the URL's host, so virtual hosts and certificate checks work as usual.
            "Host": url.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "User-Agent": f"TensorQ-Webhooks/{__version__}",
            DELIVERY_HEADER: delivery.id,
            EVENT_HEADER: delivery.event,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(secret, timestamp, body),
            SIGNATURE_V2_HEADER: signature_v2(secret, timestamp, delivery.id, delivery.event, body),
        }
        address = httpcore.URL(
            scheme=url.raw_scheme, host=target.address.compressed.encode(), port=url.port, target=url.raw_path
        )
        deadline_s = self.settings.webhook_timeout_s
        try:
            status = webhook_http.post(
                self._pool,
                address,
                [(name.encode(), value.encode()) for name, value in headers.items()],
                body,
                deadline_s,
                sni_hostname=url.host if target.scheme == "https" else None,
            )
        except httpcore.TimeoutException:
            return f"timeout: no whole answer within {deadline_s:g} s"
        except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= status < 300:
            return None
        return f"HTTP {status}" + (" (redirects are not followed)" if status in REDIRECTS else "")

    def _purge(self) -> None:
        """Delete delivered and given-up rows older than a week, at most hourly."""
        now = time.monotonic()
        if now - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = now
        try:
            self.db.webhooks.purge(utcnow() - KEEP_FINISHED)
        except TensorQError:
            log.warning("webhook outbox purge failed", exc_info=True)

    def start(self) -> None:
        """Dispatch due deliveries every ``webhook_interval_s`` (and whenever a send ends) in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="tensorq-webhooks", daemon=True)
        self._thread.start()

    def stop(self, wait_s: float = 10.0) -> None:
        """Stop dispatching, wait up to ``wait_s`` for the sends in flight, and close the connection pool."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait_s)
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            in_flight = set(self._futures)
        wait(in_flight, wait_s)
        self._pool.close()

    def _loop(self) -> None:
        while not self._stop.wait(0):
            self._wake.clear()
            try:
                self.dispatch()
                self._purge()
            except Exception:  # noqa: BLE001 - keep sending through database blips
                log.warning("webhook pass failed", exc_info=True)
            self._wake.wait(self.settings.webhook_interval_s)
