"""``policy``: an agent's policy network, observations in, one logit per action, then their probabilities."""

from __future__ import annotations

import keras

from ml.builders import register
from ml.specs import PolicyParams

LOGITS = "logits"


@register("policy")
def build(input_shape: tuple[int, ...], num_actions: int, params: PolicyParams) -> keras.Model:
    """Input, Dense ``hidden`` layers, a Dense layer named ``logits`` (one per action), softmax probabilities.

    Params, their ranges and defaults: ``ml.specs.PolicyParams``.
    """
    inputs = keras.Input(shape=input_shape, name="observations")
    x = inputs
    for i, width in enumerate(params.hidden):
        x = keras.layers.Dense(width, activation=params.activation, name=f"dense_{i}")(x)
    logits = keras.layers.Dense(num_actions, name=LOGITS, kernel_initializer=keras.initializers.Orthogonal(0.01))(x)
    outputs = keras.layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, outputs, name="policy")


def value_network(input_shape: tuple[int, ...], params: PolicyParams) -> keras.Model:
    """The critic PPO trains beside the policy: the same hidden layers, one value out (not saved)."""
    inputs = keras.Input(shape=input_shape, name="observations")
    x = inputs
    for i, width in enumerate(params.hidden):
        x = keras.layers.Dense(width, activation=params.activation, name=f"value_dense_{i}")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="value")(x), name="value")


def logits_of(policy: keras.Model) -> keras.Model:
    """The policy's logits as a model of their own (sharing its weights)."""
    return keras.Model(policy.input, policy.get_layer(LOGITS).output, name="policy_logits")
