"""Moved to ``tensorq/routing.py`` (ground for the API and the worker); kept for imports of the old name."""

from tensorq.routing import LEGACY_TASKS, QUEUES, ROUTES, RUN_JOB, Route, broker_queue, route_for

__all__ = ["LEGACY_TASKS", "QUEUES", "ROUTES", "RUN_JOB", "Route", "broker_queue", "route_for"]
