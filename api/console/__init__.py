"""The web console at ``/console``: static HTML, CSS and JavaScript modules from this package, under a strict CSP.

The pages hold no data and need no key: every job, model and dataset is read by the browser from ``/v1`` with the
key in the ``Authorization`` header (kept in ``sessionStorage``, never in a cookie or a URL), so the API's own
authentication and tenant checks are the only ones, and there is nothing for a cross-site request to ride on.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, send_from_directory

STATIC = Path(__file__).with_name("static")

# No inline script or style anywhere; heatmaps and clips arrive as blob: URLs made from authenticated fetches.
CONSOLE_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

bp = Blueprint("console", __name__, url_prefix="/console", static_folder=STATIC, static_url_path="/static")


@bp.get("/")
def index() -> Response:
    """The console's single page; its views are chosen by the URL's fragment."""
    return send_from_directory(STATIC, "index.html", max_age=0)


@bp.after_request
def _console_headers(response: Response) -> Response:
    """The console's own CSP; static files may be cached but must be revalidated."""
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-cache"
    return response


def register_console(app: Flask) -> None:
    """Mount the console at ``/console/`` (``/console`` redirects there)."""
    app.register_blueprint(bp)
