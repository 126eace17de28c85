"""``recommender``: matrix factorisation with biases, held-out RMSE against the global mean, top-k, unseen ids."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from ml import builders
from ml.architectures.recommender import MatrixFactorization
from ml.datasets import Dataset, load_builtin, load_interactions
from ml.inference import load_model
from ml.recommend import rate, top_k
from ml.training import TrainConfig, train
from tensorq.core.errors import InvalidRequest, OutOfRange
from tests.ml.conftest import Trained
from tests.ml.synthetic import low_rank_ratings


def _interactions(users: list[str], items: list[str], ratings: np.ndarray) -> Dataset:
    pairs = np.asarray(list(zip(users, items, strict=True)), dtype=object)
    return Dataset(pairs, ratings, "interactions", feature_names=["user", "item"])


@pytest.fixture(scope="module")
def trained_recommender(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Factors learnt from 6000 ratings of a rank-3 matrix (150 users x 100 items), written as a CSV and loaded."""
    users, items, ratings = low_rank_ratings(150, 100, 3, 7500, seed=5)
    folder = tmp_path_factory.mktemp("recommender")
    csv = folder / "ratings.csv"
    rows = "\n".join(f"{u},{i},{r:.4f}" for u, i, r in zip(users, items, ratings, strict=True))
    csv.write_text("who,what,stars\n" + rows + "\n")
    data = load_interactions(csv, "who", "what", "stars")
    train_rows = Dataset(data.x[:6000], data.y[:6000], data.kind, feature_names=data.feature_names)
    held_out = Dataset(data.x[6000:], data.y[6000:], data.kind)
    config = TrainConfig(
        "recommender", {"factors": 8, "l2": 1e-4}, epochs=25, batch_size=64, learning_rate=0.01, seed=3, test_split=0.15
    )
    outcome = train(config, train_rows, folder / "job")
    return Trained(load_model(outcome.model_path), outcome, held_out)


def test_rmse_beats_the_global_mean_by_a_fifth(trained_recommender: Trained) -> None:
    metrics = trained_recommender.outcome.metrics
    held_out = trained_recommender.held_out
    layer = trained_recommender.model.get_layer("mf")
    seen = np.array([u in set(layer.users) and i in set(layer.items) for u, i in held_out.x])
    _, predicted = rate(trained_recommender.model, held_out.x[seen].tolist())
    rmse = float(np.sqrt(np.mean((predicted - held_out.y[seen]) ** 2)))
    baseline = float(np.sqrt(np.mean((np.mean(held_out.y) - held_out.y[seen]) ** 2)))
    print(
        f"\nrecommender: test_rmse {metrics['test_rmse']:.3f} vs global mean {metrics['test_baseline_rmse']:.3f};"
        f" never-seen ratings {rmse:.3f} vs {baseline:.3f}"
    )
    assert metrics["test_rmse"] <= 0.8 * metrics["test_baseline_rmse"]
    assert rmse <= 0.8 * baseline
    assert set(trained_recommender.outcome.history) == {"loss", "rmse", "val_loss", "val_rmse"}
    signature = trained_recommender.outcome.signature
    assert signature["task"] == "recommend"
    assert signature["columns"] == ["who", "what"]
    assert signature["users"] == len(layer.users)
    assert signature["input_shape"] is None


def test_top_k_is_the_best_rated_items_in_order(trained_recommender: Trained) -> None:
    model = trained_recommender.model
    layer = model.get_layer("mf")
    items, scores = top_k(model, "u7", k=5)
    assert len(items) == 5
    assert list(scores) == sorted(scores, reverse=True)
    _, every = rate(model, [["u7", item] for item in layer.items])
    np.testing.assert_allclose(scores, np.sort(every)[::-1][:5], rtol=1e-6)
    assert top_k(model, "u7", k=5)[0] == items


def test_unseen_ids_are_answered_with_a_clear_error(trained_recommender: Trained) -> None:
    model = trained_recommender.model
    with pytest.raises(InvalidRequest, match="not trained on users") as caught:
        rate(model, [["u7", "i1"], ["stranger", "i1"], ["u7", "nothing"]])
    assert caught.value.code == "unknown_ids"
    assert caught.value.details == {"unknown_users": ["stranger"], "unknown_items": ["nothing"]}
    with pytest.raises(InvalidRequest, match="stranger"):
        top_k(model, "stranger")
    with pytest.raises(OutOfRange):
        top_k(model, "u7", k=0)
    with pytest.raises(InvalidRequest, match="pairs"):
        rate(model, [["u7"]])
    assert rate(model, ["u7", "i1"])[1].shape == (1,)  # one pair on its own


def test_saved_model_loads_safely_with_its_vocabularies(trained_recommender: Trained) -> None:
    again = keras.models.load_model(trained_recommender.outcome.model_path, safe_mode=True, compile=False)
    layer = again.get_layer("mf")
    assert isinstance(layer, MatrixFactorization)
    assert layer.users == trained_recommender.model.get_layer("mf").users
    pairs = [["u1", "i2"], ["u3", "i4"]]
    np.testing.assert_allclose(rate(again, pairs)[1], rate(trained_recommender.model, pairs)[1], rtol=1e-6)


def test_same_seed_same_history(tmp_path: Path) -> None:
    data = _interactions(*low_rank_ratings(30, 20, 2, 300, seed=1))
    config = TrainConfig("recommender", {"factors": 4}, epochs=3, batch_size=32, seed=6)
    first = train(config, data, tmp_path / "a").history
    second = train(config, data, tmp_path / "b").history
    for name in first:
        np.testing.assert_allclose(first[name], second[name], rtol=0, atol=1e-6)


def test_recommender_needs_interactions_and_checks_params(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="interactions"):
        train(TrainConfig("recommender", {}, epochs=1), load_builtin("iris"), tmp_path)
    with pytest.raises(InvalidRequest, match="recommender"):
        train(TrainConfig("mlp", {}, epochs=1), _interactions(["a", "b"], ["x", "y"], np.ones(2, np.float32)), tmp_path)
    with pytest.raises(OutOfRange) as caught:
        builders.get("recommender")(["a"], ["b"], 3.0, {"factors": 0})
    assert caught.value.details["field"] == "params.factors"
    with pytest.raises(InvalidRequest, match="unknown params"):
        builders.get("recommender")(["a"], ["b"], 3.0, {"rank": 3})
