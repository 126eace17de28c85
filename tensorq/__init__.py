"""TensorQ: an asynchronous job system for TensorFlow training, inference and explanation."""

from tensorq.core import __version__

__all__ = ["__version__"]
