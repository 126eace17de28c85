"""``recommender``: matrix factorisation with biases over string user and item ids, a registered layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ml.builders import register
from ml.specs import RecommenderParams
from tensorq.core.errors import InvalidRequest

MAX_IDS = 10_000_000


@keras.saving.register_keras_serializable(package="tensorq")
class MatrixFactorization(keras.layers.Layer):
    """rating(u, i) = global bias + user bias + item bias + <user factors, item factors>.

    Takes (batch, 2) strings (user id, item id); the vocabularies live in the layer (and in the saved
    model's config), and index 0 of each table stands for an id not seen in training.
    """

    def __init__(
        self,
        users: list[str],
        items: list[str],
        factors: int = 16,
        l2: float = 1e-4,
        init_scale: float = 0.05,
        global_mean: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.users = [str(u) for u in users]
        self.items = [str(i) for i in items]
        self.factors = int(factors)
        self.l2 = float(l2)
        self.init_scale = float(init_scale)
        self.global_mean = float(global_mean)
        regularizer = keras.regularizers.L2(self.l2) if self.l2 else None
        normal = keras.initializers.RandomNormal(stddev=self.init_scale)

        def table(name: str, rows: int, width: int, init: Any) -> keras.layers.Embedding:
            return keras.layers.Embedding(
                rows, width, embeddings_initializer=init, embeddings_regularizer=regularizer, name=name
            )

        self.user_lookup = keras.layers.StringLookup(vocabulary=self.users, num_oov_indices=1, name="user_lookup")
        self.item_lookup = keras.layers.StringLookup(vocabulary=self.items, num_oov_indices=1, name="item_lookup")
        self.user_factors = table("user_factors", len(self.users) + 1, self.factors, normal)
        self.item_factors = table("item_factors", len(self.items) + 1, self.factors, normal)
        self.user_bias = table("user_bias", len(self.users) + 1, 1, "zeros")
        self.item_bias = table("item_bias", len(self.items) + 1, 1, "zeros")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create the global bias (starting at the training mean) and the embedding tables."""
        initial = keras.initializers.Constant(self.global_mean)
        self.global_bias = self.add_weight(shape=(), initializer=initial, name="global_bias")
        for layer in (self.user_factors, self.item_factors, self.user_bias, self.item_bias):
            layer.build((None,))

    def call(self, pairs: Any) -> Any:
        """Predicted ratings, one per (user, item) row."""
        users = self.user_lookup(pairs[:, 0])
        items = self.item_lookup(pairs[:, 1])
        dot = ops.sum(self.user_factors(users) * self.item_factors(items), axis=-1)
        biases = ops.squeeze(self.user_bias(users), -1) + ops.squeeze(self.item_bias(items), -1)
        return self.global_bias + biases + dot

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None]:
        """One rating per row."""
        return (input_shape[0],)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, vocabularies included."""
        return {
            **super().get_config(),
            "users": self.users,
            "items": self.items,
            "factors": self.factors,
            "l2": self.l2,
            "init_scale": self.init_scale,
            "global_mean": self.global_mean,
        }


@register("recommender")
def build(users: list[str], items: list[str], global_mean: float, params: RecommenderParams) -> keras.Model:
    """A model from (batch, 2) string pairs to (batch,) ratings, around a MatrixFactorization layer named "mf".

    Params (``factors`` latent size, ``l2`` penalty on every table, ``init_scale`` standard deviation of the
    initial factors), their ranges and defaults: ``ml.specs.RecommenderParams``.
    """
    factors, l2, init_scale = params.factors, params.l2, params.init_scale
    if not users or not items or len(users) > MAX_IDS or len(items) > MAX_IDS:
        raise InvalidRequest(f"a recommender needs 1 to {MAX_IDS} users and items")
    inputs = keras.Input(shape=(2,), dtype="string", name="pair")
    layer = MatrixFactorization(users, items, factors, l2, init_scale, global_mean, name="mf")
    return keras.Model(inputs, layer(inputs), name="recommender")
