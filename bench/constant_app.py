"""The HTTP baseline: a Flask app whose one route answers a constant, served by the same gunicorn options."""

from __future__ import annotations

from flask import Flask, jsonify

app = Flask("bench.constant")


@app.route("/", methods=["GET", "POST"])
@app.route("/v1/jobs", methods=["GET", "POST"])
def constant():  # type: ignore[no-untyped-def]
    """Answer the same small JSON body to every request, reading nothing."""
    return jsonify({"status": "queued"}), 202
