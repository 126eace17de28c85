"""Audio models explained over time x frequency: any method, on the model's own log-mel spectrogram.

The clips go through the model's ``LogMelSpectrogram`` layer; the rest of the model (spectrogram in,
probabilities out) is explained by the numeric methods, each clip against its own silence (every cell at the
clip's quietest level: the spectrogram with the sound taken out, so silent stretches get no attribution), so
attributions are (frames, mels) per clip with the method's own quality figure (the worst clip's overall), and
the spectrograms ride along in ``extras["spectrograms"]`` for the pictures.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ml.architectures.audio_cnn import SPECTROGRAM, LogMelSpectrogram
from ml.explainers.common import Explanation
from tensorq.core.errors import InvalidRequest


def spectrogram_layer(model: keras.Model) -> LogMelSpectrogram | None:
    """The model's spectrogram layer, or None when it is not an audio model."""
    try:
        layer = model.get_layer(SPECTROGRAM)
    except ValueError:
        return None
    return layer if isinstance(layer, LogMelSpectrogram) else None


def explain_audio(
    model: keras.Model, x: np.ndarray, method: str, target: Any, steps: int, options: dict[str, Any]
) -> Explanation:
    """Attributions of clips ``x`` (N, samples) per spectrogram cell (N, frames, mels) with ``method``."""
    from ml.explain import explain

    layer = spectrogram_layer(model)
    if layer is None:
        raise InvalidRequest("not an audio model: it has no spectrogram layer")
    spectrograms = np.asarray(layer(np.asarray(x, dtype=np.float32)), dtype=np.float32)
    head = keras.Model(layer.output, model.output, name="audio_head")
    parts = []
    for i, spectrogram in enumerate(spectrograms):
        silence = np.full(spectrogram.shape, spectrogram.min(), dtype=np.float32)
        aim = target[i] if isinstance(target, list) else target
        parts.append(explain(head, spectrogram[None], method, target=aim, steps=steps, baseline=silence, **options))
    return _joined(parts, spectrograms)


def _joined(parts: list[Explanation], spectrograms: np.ndarray) -> Explanation:
    """The explanations of single clips as one: rows in order, the quality figure of the worst clip."""
    first = parts[0]
    ((name, _),) = first.quality.items()
    values = [p.quality[name] for p in parts]
    return Explanation(
        attributions=np.concatenate([np.asarray(p.attributions, dtype=np.float32) for p in parts]),
        targets=[t for p in parts for t in p.targets],
        predictions=np.concatenate([p.predictions for p in parts]),
        method=first.method,
        quality={name: float(min(values) if first.method == "lime" else max(values))},
        per_input_quality=[q for p in parts for q in p.per_input_quality],
        extras={"spectrograms": spectrograms},
    )
