"""Webhooks: the tenant's signing secret (``/v1/webhook-secret``), a job's deliveries, and the checks a
``callback_url`` passes at submit time."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api import present, responses
from api.openapi import operation
from api.services import principal, services
from db.records import iso
from tensorq.core.errors import OutOfRange
from tensorq.core.webhook_targets import AllowList, check_target

bp = Blueprint("webhooks", __name__)


def check_callback(tenant_id: str, url: str | None) -> None:
    """Refuse (422) a callback URL that is not http(s), resolves to an internal address the operator did not
    allow, or belongs to a tenant without a signing secret yet."""
    if url is None:
        return
    svc = services()
    check_target(url, AllowList.parse(svc.settings.webhook_allowed_hosts))
    if svc.db.webhooks.secret_created_at(tenant_id) is None:
        raise OutOfRange(
            "create a webhook signing secret first (POST /v1/webhook-secret): deliveries are signed with it",
            code="webhook_secret_missing",
        )


@bp.post("/webhook-secret")
@operation(
    summary="Create or rotate the tenant's webhook signing secret; the answer is the only time it is shown",
    responses={201: responses.WebhookSecret},
    errors=(403,),
)
def rotate_webhook_secret():
    """A new secret that signs every delivery from now on (pending ones too); the old one stops at once."""
    secret, created_at, replaced = services().db.webhooks.rotate_secret(principal().tenant_id)
    return jsonify({"secret": secret, "created_at": iso(created_at), "replaced": replaced}), 201


@bp.get("/webhook-secret")
@operation(
    summary="Whether the tenant has a webhook signing secret, and since when (never the secret)",
    responses={200: responses.WebhookSecretState},
)
def webhook_secret_state():
    """Whether a secret exists and when it was made."""
    created_at = services().db.webhooks.secret_created_at(principal().tenant_id)
    return jsonify({"configured": created_at is not None, "created_at": iso(created_at)})


@bp.get("/jobs/<job_id>/webhooks")
@operation(
    summary="A job's webhook deliveries: status, attempts, last error",
    responses={200: responses.WebhookDeliveryList},
    errors=(404,),
)
def job_deliveries(job_id: str):
    """The deliveries of the job's notifications, oldest first (404 for another tenant's job)."""
    svc = services()
    tenant_id = principal().tenant_id
    svc.db.jobs.get(tenant_id, job_id)
    return jsonify({"deliveries": [present.webhook_delivery(d) for d in svc.db.webhooks.of_job(tenant_id, job_id)]})
