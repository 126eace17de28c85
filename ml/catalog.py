"""The names the TensorFlow core offers, importable without TensorFlow (the API validates with them)."""

ARCHITECTURES = ("mlp", "cnn", "rnn", "vae", "recommender")
# What each architecture learns: class probabilities, a generative model of its inputs, or ratings.
TASKS = {"mlp": "classify", "cnn": "classify", "rnn": "classify", "vae": "autoencode", "recommender": "recommend"}
# The figures each task logs per epoch (and with a ``val_`` prefix on validation data).
TASK_METRICS = {
    "classify": ("loss", "accuracy"),
    "autoencode": ("loss", "reconstruction_loss", "kl_loss"),
    "recommend": ("loss", "rmse"),
}
EXPLAIN_METHODS = ("integrated_gradients", "smoothgrad", "occlusion", "kernel_shap", "gradient_shap", "lime")
# Explain methods whose result for a row does not depend on the other rows explained with it, so the rows of
# several jobs may share one call (``ml.explain.rows_of`` gives each its own): integrated gradients (a
# deterministic integral per row), occlusion (per row), kernel_shap and lime (per row, each row's random
# stream seeded with ``seed`` anew). Not smoothgrad or gradient_shap: one random stream runs over all the rows,
# so a row's noise depends on the rows before it. With none of them the "mean" baseline (the rows' mean).
PER_ROW_METHODS = ("integrated_gradients", "occlusion", "kernel_shap", "lime")
BUILTIN_DATASETS = ("digits", "breast_cancer", "iris", "wine")
# The shape of one example of each builtin dataset (digits are 8x8 grey images).
BUILTIN_SHAPES = {"digits": (8, 8, 1), "breast_cancer": (30,), "iris": (4,), "wine": (13,)}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
PREDICT_MODES = ("encode", "reconstruct", "sample")
# The architecture recorded for a model brought by its user (``POST /v1/models``).
IMPORTED = "imported"
# Bounds on ``.jsonl`` text datasets, shared by the upload check and the loader.
TEXT_MAX_ROWS = 1_000_000
TEXT_MAX_LINE_BYTES = 100_000
# TensorQ's own Keras classes as a saved model's config.json names them ("registered_name"); see ml.custom_objects.
REGISTERED_CLASSES = frozenset(
    {"tensorq>VariationalAutoencoder", "tensorq>MatrixFactorization", "tensorq>TabularEncoder"}
)
