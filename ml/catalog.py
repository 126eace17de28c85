"""The names the TensorFlow core offers, importable without TensorFlow (the API validates with them)."""

ARCHITECTURES = ("mlp", "cnn")
EXPLAIN_METHODS = ("integrated_gradients",)
BUILTIN_DATASETS = ("digits", "breast_cancer", "iris", "wine")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
