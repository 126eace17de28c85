"""TensorQ: an asynchronous job system for TensorFlow training, inference and explanation."""

__version__ = "0.1.0"
