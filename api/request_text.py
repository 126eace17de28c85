"""The request's text: its JSON body, and refusals of text no database column can hold (a NUL character in the
path, the query or form fields)."""

from __future__ import annotations

from typing import Any

from flask import request

from tensorq.core import bounded_json
from tensorq.core.errors import InvalidRequest, UnsupportedMedia


def json_body() -> Any:
    """The request's JSON body: 415 when it is not JSON, 400 when it does not parse."""
    if not request.is_json:
        raise UnsupportedMedia("send the body as application/json")
    return bounded_json.loads(request.get_data(cache=True), what="the JSON body")


def _has_nul(*texts: str | None) -> bool:
    return any(text is not None and "\x00" in text for text in texts)


def refuse_nul_in_url() -> None:
    """400 ``invalid_characters`` when the path (any id, name or version in it) or a query field holds NUL."""
    if _has_nul(request.path) or any(_has_nul(k, v) for k, v in request.args.items(multi=True)):
        raise InvalidRequest("the URL contains a NUL character", code="invalid_characters")


def refuse_nul_in_form() -> None:
    """400 ``invalid_characters`` when a multipart field's name, value or file name holds NUL."""
    if request.mimetype != "multipart/form-data":
        return
    fields = request.form.items(multi=True)
    files = request.files.items(multi=True)
    if any(_has_nul(k, v) for k, v in fields) or any(_has_nul(k, f.filename) for k, f in files):
        raise InvalidRequest("a form field contains a NUL character", code="invalid_characters")
