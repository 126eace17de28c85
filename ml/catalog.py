"""The names the TensorFlow core offers, importable without TensorFlow (the API validates with them)."""

ARCHITECTURES = ("mlp", "cnn", "rnn", "vae", "recommender", "audio_cnn", "policy")
# What each architecture learns: class probabilities, a generative model of its inputs, or ratings.
TASKS = {
    "mlp": "classify",
    "cnn": "classify",
    "rnn": "classify",
    "vae": "autoencode",
    "recommender": "recommend",
    "audio_cnn": "classify",
    "policy": "reinforce",
}
# The figures each task logs per epoch (and with a ``val_`` prefix on validation data).
TASK_METRICS = {
    "classify": ("loss", "accuracy"),
    "autoencode": ("loss", "reconstruction_loss", "kl_loss"),
    "recommend": ("loss", "rmse"),
    "reinforce": ("loss", "mean_return"),
}
EXPLAIN_METHODS = ("integrated_gradients", "smoothgrad", "occlusion", "kernel_shap", "gradient_shap", "lime")
# Explain methods whose result for a row does not depend on the other rows explained with it, so the rows of
# several jobs may share one call (``ml.explain.rows_of`` gives each its own): integrated gradients (a
# deterministic integral per row), occlusion (per row), kernel_shap and lime (per row, each row's random
# stream seeded with ``seed`` anew). Not smoothgrad or gradient_shap: one random stream runs over all the rows,
# so a row's noise depends on the rows before it. With none of them the "mean" baseline (the rows' mean).
PER_ROW_METHODS = ("integrated_gradients", "occlusion", "kernel_shap", "lime")
BUILTIN_DATASETS = ("digits", "breast_cancer", "iris", "wine", "spoken_digits")
# The shape of one example of each builtin dataset (digits are 8x8 grey images).
BUILTIN_SHAPES = {"digits": (8, 8, 1), "breast_cancer": (30,), "iris": (4,), "wine": (13,)}
# Builtin datasets of audio clips (their shape is the model's window: its params' sample_rate x clip_seconds).
AUDIO_BUILTINS = ("spoken_digits",)
# Bounds on audio datasets and clips (issue 24), shared by the upload check, the loader and inline clips.
AUDIO_MAX_CLIP_SECONDS = 30.0
AUDIO_MAX_TOTAL_SECONDS = 4 * 3600.0
AUDIO_MAX_CLIPS = 100_000
# The Gymnasium environments an agent (architecture "policy") trains in (issue 24), with the names of their
# observation's features and of their actions.
ENVIRONMENTS = ("CartPole-v1", "Blackjack-v1")
ENVIRONMENT_FEATURES = {
    "CartPole-v1": ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity"),
    "Blackjack-v1": ("player_sum", "dealer_card", "usable_ace"),
}
ENVIRONMENT_ACTIONS = {"CartPole-v1": ("push_left", "push_right"), "Blackjack-v1": ("stick", "hit")}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
PREDICT_MODES = ("encode", "reconstruct", "sample")
# The architecture recorded for a model brought by its user (``POST /v1/models``).
IMPORTED = "imported"
# Bounds on ``.jsonl`` text datasets, shared by the upload check and the loader.
TEXT_MAX_ROWS = 1_000_000
TEXT_MAX_LINE_BYTES = 100_000
# TensorQ's own Keras classes as a saved model's config.json names them ("registered_name"); see ml.custom_objects.
REGISTERED_CLASSES = frozenset(
    {
        "tensorq>VariationalAutoencoder",
        "tensorq>MatrixFactorization",
        "tensorq>TabularEncoder",
        "tensorq>LogMelSpectrogram",
    }
)
# The Keras layer classes an uploaded ``.keras`` may use: those whose weights and output ``ml.layer_sizes`` can
# size from the config before Keras builds them (any other layer is refused, 400 unsupported_layer).
KERAS_LAYERS = frozenset(
    {
        "InputLayer", "Dense", "EinsumDense", "Embedding",
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
        "BatchNormalization", "LayerNormalization", "Normalization", "PReLU",
        "LSTM", "GRU", "SimpleRNN", "Bidirectional",
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "UpSampling1D", "UpSampling2D", "UpSampling3D", "Flatten", "Reshape", "Permute", "RepeatVector",
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
        "AlphaDropout", "ActivityRegularization", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax",
        "Identity", "Rescaling",
        "Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
        "TextVectorization", "StringLookup", "IntegerLookup",
    }
)  # fmt: skip
