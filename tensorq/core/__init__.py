"""TensorQ's ground: the settings, the error tree, routing (the task, the queues, the ``Publisher``
Protocol), the retry policy, webhook signing and target checks, bounded JSON, artifact paths and the
version. Every package imports these; they import nothing else of the project (tests/test_boundaries.py)."""

__version__ = "0.1.0"
