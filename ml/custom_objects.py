"""The Keras classes of TensorQ's own that saved models may contain, registered for ``safe_mode`` loading.

Importing this module registers them (``keras.saving.register_keras_serializable(package="tensorq")``);
``ml.inference`` and ``ml.checkpoint`` import it before they load a model.
"""

from __future__ import annotations

import keras

from ml.architectures.audio_cnn import LogMelSpectrogram
from ml.architectures.recommender import MatrixFactorization
from ml.architectures.vae import VariationalAutoencoder
from ml.catalog import REGISTERED_CLASSES
from ml.encoding import TabularEncoder

CLASSES = (VariationalAutoencoder, MatrixFactorization, TabularEncoder, LogMelSpectrogram)
if {keras.saving.get_registered_name(cls) for cls in CLASSES} != REGISTERED_CLASSES:
    raise RuntimeError("ml.catalog.REGISTERED_CLASSES does not name the classes registered here")
