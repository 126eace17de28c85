"""The webhook sender: delivers the outbox's notifications, signed, at least once, with exponential backoff.

It runs as a thread in every worker child next to the reaper. Each attempt claims its delivery with a
conditional UPDATE (so two senders never send one delivery at the same time), re-resolves and re-checks the
callback host, connects to the address it checked, follows no redirect, and waits at most
``webhook_timeout_s``. A 2xx answer delivers; anything else is retried after ``webhook_backoff_s`` doubling
up to ``webhook_backoff_max_s``, until ``webhook_max_attempts`` attempts were made."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from api.present import notification
from db.database import Database
from db.models import utcnow
from db.webhooks import Delivery
from tensorq import __version__
from tensorq.errors import TensorQError
from tensorq.settings import Settings
from tensorq.webhook_signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from tensorq.webhook_targets import AllowList, check_target

log = logging.getLogger(__name__)
KEEP_FINISHED = timedelta(days=7)  # delivered and given-up rows are purged after this
PURGE_EVERY_S = 3600.0


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
    """Sends due deliveries from the outbox."""

    def __init__(self, settings: Settings, db: Database, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.db = db
        self._client = httpx.Client(
            timeout=settings.webhook_timeout_s, follow_redirects=False, trust_env=False, transport=transport
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._purged_at = 0.0

    def run_once(self, limit: int = 50) -> SendReport:
        """One pass: every due delivery (up to ``limit``) gets one attempt."""
        report = SendReport()
        hold_s = 2 * self.settings.webhook_timeout_s + 30
        for delivery_id in self.db.webhooks.due(limit):
            delivery = self.db.webhooks.claim(delivery_id, hold_s)
            if delivery is None:
                continue
            error = self._attempt(delivery)
            if error is None:
                self.db.webhooks.delivered(delivery.id)
                report.delivered.append(delivery.id)
                continue
            last = delivery.attempts >= self.settings.webhook_max_attempts
            retry_in = None if last else backoff_s(self.settings, delivery.attempts)
            self.db.webhooks.attempt_failed(delivery.id, error, retry_in)
            (report.given_up if last else report.retrying).append(delivery.id)
            log.warning(
                "webhook %s of job %s, attempt %d: %s%s",
                delivery.id,
                delivery.job_id,
                delivery.attempts,
                error,
                "; giving up" if last else f"; next attempt in {retry_in:.0f} s",
            )
        self._purge()
        return report

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
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"TensorQ-Webhooks/{__version__}",
            DELIVERY_HEADER: delivery.id,
            EVENT_HEADER: delivery.event,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(secret, timestamp, body),
        }
        url = httpx.URL(delivery.url)
        # Connect to the address just checked, never to a second lookup's answer; the Host header and TLS's
        # server name stay the URL's host, so virtual hosts and certificate checks work as usual.
        headers["Host"] = url.netloc.decode("ascii")
        address = target.address.compressed
        extensions = {"sni_hostname": url.host} if target.scheme == "https" else {}
        try:
            answer = self._client.post(
                url.copy_with(host=address), content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= answer.status_code < 300:
            return None
        return f"HTTP {answer.status_code}" + (" (redirects are not followed)" if answer.is_redirect else "")

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
        """Run passes every ``webhook_interval_s`` in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="tensorq-webhooks", daemon=True)
        self._thread.start()

    def stop(self, wait_s: float = 10.0) -> None:
        """Stop the loop (after the attempt in flight) and close the HTTP client."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait_s)
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.webhook_interval_s):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - keep sending through database blips
                log.warning("webhook pass failed", exc_info=True)
