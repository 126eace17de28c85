"""``GET /v1/whoami``: the caller's tenant and whether its key may write (the console hides write buttons by it)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from api import responses
from api.openapi import operation
from api.services import principal

bp = Blueprint("whoami", __name__)


@bp.get("/whoami")
@operation(summary="The caller's tenant and the scope of its key", responses={200: responses.Identity})
def whoami():
    """The tenant behind the key and whether the key is read-only; never the key itself."""
    who = principal()
    return jsonify(
        {"tenant": who.tenant_name, "tenant_id": who.tenant_id, "key_id": who.key_id, "read_only": who.read_only}
    )
