"""The TensorFlow core: datasets, model builders, training, inference and explanations.

Importing this package does not import TensorFlow; the submodules that need it do.
"""
