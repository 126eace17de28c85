"""Moved to ``tensorq/core/routing.py`` (ground for the API and the worker); kept for imports of the old name."""

from tensorq.core.routing import LEGACY_TASKS, QUEUES, ROUTES, RUN_JOB, Route, broker_queue, route_for

__all__ = ["LEGACY_TASKS", "QUEUES", "ROUTES", "RUN_JOB", "Route", "broker_queue", "route_for"]
