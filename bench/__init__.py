"""TensorQ's benchmark suite: the real system measured against raw Celery and plain Keras in the same run.

Run it with ``python -m bench`` (``--quick`` for a few minutes on two cores, ``--check`` to fail on a
missing figure). See ``docs/performance.md``.
"""
