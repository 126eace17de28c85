"""The thin HTTP API: validates, records and enqueues jobs; never imports TensorFlow."""

from api.app import create_app

__all__ = ["create_app"]
