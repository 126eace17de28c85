"""Training on real TensorFlow: accuracy, determinism, progress, cancel, checkpoints and resume."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.datasets import Dataset, load_builtin
from ml.training import TrainConfig, train
from tensorq.core.errors import InvalidRequest, JobCancelled, OutOfRange
from tests.ml.conftest import Trained


def test_mlp_learns_breast_cancer(trained_mlp: Trained) -> None:
    metrics = trained_mlp.outcome.metrics
    print(
        f"\nmlp/breast_cancer: val_accuracy {metrics['val_accuracy']:.4f}, test_accuracy {metrics['test_accuracy']:.4f}"
    )
    assert metrics["val_accuracy"] >= 0.93
    assert metrics["test_accuracy"] >= 0.93
    assert set(metrics) == {"loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"}
    assert all(isinstance(v, float) for v in metrics.values())
    outcome = trained_mlp.outcome
    assert outcome.input_shape == [30]
    assert outcome.num_classes == 2
    assert outcome.epochs_run == 20
    assert outcome.model_path.name == "model.keras"
    assert outcome.model_path.is_file()
    assert [len(v) for v in outcome.history.values()] == [20] * 4


def test_cnn_learns_digits(trained_cnn: Trained) -> None:
    metrics = trained_cnn.outcome.metrics
    print(f"\ncnn/digits: val_accuracy {metrics['val_accuracy']:.4f}, test_accuracy {metrics['test_accuracy']:.4f}")
    assert metrics["val_accuracy"] > 0.9
    assert metrics["test_accuracy"] > 0.9
    assert trained_cnn.outcome.input_shape == [8, 8, 1]
    assert trained_cnn.outcome.num_classes == 10


def _small() -> Dataset:
    ds = load_builtin("breast_cancer")
    return Dataset(ds.x[:200], ds.y[:200], ds.kind)


def test_same_seed_same_history(tmp_path: Path) -> None:
    config = TrainConfig("mlp", {"hidden": [16], "dropout": 0.2}, epochs=3, batch_size=16, seed=42)
    first = train(config, _small(), tmp_path / "a")
    second = train(config, _small(), tmp_path / "b")
    assert first.history.keys() == second.history.keys()
    for name in first.history:
        np.testing.assert_allclose(first.history[name], second.history[name], rtol=0, atol=1e-6)


def test_the_final_checkpoint_and_the_model_are_one_file_on_disk(tmp_path: Path) -> None:
    outcome = train(TrainConfig("mlp", {"hidden": [8]}, epochs=2, seed=3), _small(), tmp_path)
    checkpoint = tmp_path / "checkpoint.keras"
    assert outcome.model_path.samefile(checkpoint)
    assert checkpoint.stat().st_nlink == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "checkpoint.keras", "model.keras"]


def test_the_saved_model_is_the_trained_model_with_its_optimizer_state(tmp_path: Path) -> None:
    data = _small()
    config = TrainConfig("mlp", {"hidden": [8]}, epochs=2, batch_size=32, validation_split=0.0, seed=3)
    outcome = train(config, data, tmp_path)
    saved = keras.models.load_model(outcome.model_path, safe_mode=True)
    # With no validation split, the last epoch's training loss is measured on these very rows in the
    # last epoch's passes; evaluating the saved model must land near it, and training it further must run.
    loss = saved.evaluate(data.x, data.y, verbose=0)[0]
    assert abs(loss - outcome.history["loss"][-1]) < 0.1
    assert saved.optimizer.iterations.numpy() == 2 * int(np.ceil(len(data.x) / 32))


def test_progress_is_reported_each_epoch_as_plain_floats(tmp_path: Path) -> None:
    seen: list[dict] = []
    config = TrainConfig("mlp", {"hidden": [8]}, epochs=3, batch_size=64, seed=1)
    train(config, _small(), tmp_path, on_epoch=seen.append)
    assert [p["epoch"] for p in seen] == [1, 2, 3]
    assert all(p["epochs"] == 3 for p in seen)
    for progress in seen:
        assert set(progress) == {"epoch", "epochs", "loss", "accuracy", "val_loss", "val_accuracy"}
        assert all(type(progress[k]) is float for k in ("loss", "accuracy", "val_loss", "val_accuracy"))
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["epoch"] == 3
    assert len(state["history"]["loss"]) == 3


def test_cancel_then_resume_from_the_checkpoint(tmp_path: Path) -> None:
    config = TrainConfig("mlp", {"hidden": [16]}, epochs=4, batch_size=32, seed=5)
    epochs_done: list[int] = []
    polls = {"after_epoch_2": 0}

    def should_stop() -> bool:
        if epochs_done and epochs_done[-1] >= 2:
            polls["after_epoch_2"] += 1
            return True
        return False

    with pytest.raises(JobCancelled) as caught:
        train(config, _small(), tmp_path, on_epoch=lambda p: epochs_done.append(p["epoch"]), should_stop=should_stop)
    assert caught.value.message == "cancelled"
    assert epochs_done == [1, 2]
    assert polls["after_epoch_2"] == 1  # stopped at the first batch boundary of epoch 3
    assert (tmp_path / "checkpoint.keras").is_file()
    assert not (tmp_path / "model.keras").exists()
    saved = json.loads((tmp_path / "checkpoint.json").read_text())
    assert saved["epoch"] == 2
    assert len(saved["history"]["loss"]) == 2

    resumed: list[int] = []
    outcome = train(config, _small(), tmp_path, on_epoch=lambda p: resumed.append(p["epoch"]))
    assert resumed == [3, 4]
    assert outcome.epochs_run == 4
    assert all(len(values) == 4 for values in outcome.history.values())
    assert outcome.history["loss"][:2] == saved["history"]["loss"]
    assert outcome.model_path.is_file()
    # The optimizer state came back with the model: training went on improving, not restarting.
    assert outcome.history["loss"][3] < outcome.history["loss"][0]


def test_early_stopping_stops_and_keeps_the_best_weights(tmp_path: Path) -> None:
    stopping = {"patience": 1, "monitor": "val_loss", "min_delta": 1e9}  # nothing after epoch 1 counts as better
    config = TrainConfig("mlp", {"hidden": [8]}, epochs=10, seed=2, early_stopping=stopping)
    outcome = train(config, _small(), tmp_path)
    assert outcome.epochs_run == 2
    assert json.loads((tmp_path / "checkpoint.json").read_text())["early_stopping"]["stopped"] is True


def test_early_stopping_patience_and_best_weights_survive_a_resume(tmp_path: Path) -> None:
    stopping = {"patience": 1, "min_delta": 1e9}
    config = TrainConfig("mlp", {"hidden": [8]}, epochs=6, seed=2, early_stopping=stopping)
    done: list[int] = []
    with pytest.raises(JobCancelled):
        train(config, _small(), tmp_path, on_epoch=lambda p: done.append(p["epoch"]), should_stop=lambda: bool(done))
    best = np.load(tmp_path / "checkpoint.best.npz")
    best_weights = [best[f"w{i}"] for i in range(len(best.files))]

    outcome = train(config, _small(), tmp_path)
    assert outcome.epochs_run == 2  # epoch 2 was the one allowed epoch without improvement, as without a cancel
    saved = keras.models.load_model(outcome.model_path, safe_mode=True, compile=False)
    for got, want in zip(saved.get_weights(), best_weights, strict=True):
        np.testing.assert_array_equal(got, want)

    # A job re-run after it had stopped early (say the worker died before registering) trains no further.
    outcome.model_path.unlink()
    again: list[int] = []
    outcome = train(config, _small(), tmp_path, on_epoch=again.append)
    assert again == []
    assert outcome.epochs_run == 2
    assert outcome.model_path.is_file()
    for got, want in zip(keras.models.load_model(outcome.model_path).get_weights(), best_weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_early_stopping_without_validation_watches_the_training_loss(tmp_path: Path) -> None:
    config = TrainConfig("mlp", {"hidden": [8]}, epochs=3, seed=2, validation_split=0.0, early_stopping={})
    outcome = train(config, _small(), tmp_path)
    assert outcome.epochs_run == 3
    assert set(outcome.metrics) == {"loss", "accuracy"}
    with pytest.raises(OutOfRange):
        train(TrainConfig("mlp", {}, early_stopping={"monitor": "f1"}), _small(), tmp_path / "x")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 10_001),
        ("batch_size", 0),
        ("batch_size", 65_537),
        ("validation_split", 0.9),
        ("validation_split", -0.1),
        ("learning_rate", 0.0),
        ("learning_rate", 11.0),
        ("epochs", "ten"),
    ],
)
def test_config_out_of_range_names_the_field(tmp_path: Path, field: str, value: object) -> None:
    config = TrainConfig("mlp", {})
    setattr(config, field, value)
    with pytest.raises(OutOfRange) as caught:
        train(config, _small(), tmp_path)
    assert caught.value.details["field"] == field


def test_labels_must_be_non_negative_class_ids(tmp_path: Path) -> None:
    ds = _small()
    with pytest.raises(InvalidRequest, match="class ids"):
        train(TrainConfig("mlp", {}, epochs=1), Dataset(ds.x, ds.y - 1, ds.kind), tmp_path)
    with pytest.raises(InvalidRequest, match="class ids"):
        train(TrainConfig("mlp", {}, epochs=1), Dataset(ds.x, ds.y.astype(np.float32), ds.kind), tmp_path)
    with pytest.raises(InvalidRequest, match="two classes"):
        train(TrainConfig("mlp", {}, epochs=1), Dataset(ds.x, np.zeros_like(ds.y), ds.kind), tmp_path)


def test_unknown_architecture_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="known: mlp, cnn"):
        train(TrainConfig("resnet", {}, epochs=1), _small(), tmp_path)


def test_mlp_reaches_95_percent_on_held_out_breast_cancer(trained_mlp: Trained) -> None:
    assert trained_mlp.outcome.metrics["test_accuracy"] >= 0.95


def test_class_weights_balanced_or_given() -> None:
    from ml.tasks.classify import class_weights

    y = np.array([0] * 90 + [1] * 10)
    assert class_weights("balanced", y, 2) == pytest.approx({0: 100 / 180, 1: 100 / 20})
    assert class_weights({"1": 4}, y, 3) == {0: 1.0, 1: 4.0, 2: 1.0}
    for bad in ({"5": 1.0}, {"0": 0}, {"0": True}):
        with pytest.raises(OutOfRange):
            class_weights(bad, y, 2)
    with pytest.raises(InvalidRequest):
        class_weights({"zero": 1.0}, y, 2)


def test_class_weights_move_predictions_towards_the_rare_class(tmp_path: Path) -> None:
    ds = load_builtin("breast_cancer")
    rare = np.flatnonzero(ds.y == 0)[:15]
    common = np.flatnonzero(ds.y == 1)[:200]
    rows = np.concatenate([rare, common])
    data = Dataset(ds.x[rows], ds.y[rows], ds.kind)
    base = TrainConfig("mlp", {"hidden": [8]}, epochs=4, batch_size=32, seed=3, validation_split=0.0)
    plain = train(base, data, tmp_path / "plain")
    weighted = train(TrainConfig(**{**base.__dict__, "class_weight": "balanced"}), data, tmp_path / "weighted")
    rare_x = ds.x[np.flatnonzero(ds.y == 0)[15:]]
    p_plain = np.asarray(keras.models.load_model(plain.model_path)(rare_x))[:, 0].mean()
    p_weighted = np.asarray(keras.models.load_model(weighted.model_path)(rare_x))[:, 0].mean()
    print(f"\nclass_weight balanced: mean P(rare class) on rare rows {p_plain:.3f} -> {p_weighted:.3f}")
    assert p_weighted > p_plain


@pytest.mark.parametrize("architecture", ["vae", "recommender", "rnn"])
def test_every_family_resumes_from_its_checkpoint(tmp_path: Path, architecture: str) -> None:
    from tests.ml.synthetic import low_rank_ratings, sentiment

    if architecture == "vae":
        data, params = load_builtin("wine"), {"hidden": [8], "latent_dim": 2}
    elif architecture == "recommender":
        users, items, ratings = low_rank_ratings(20, 10, 2, 150, seed=1)
        pairs = np.asarray(list(zip(users, items, strict=True)), dtype=object)
        data, params = Dataset(pairs, ratings, "interactions"), {"factors": 2}
    else:
        texts, labels = sentiment(60, seed=1)
        data, params = Dataset(np.asarray(texts, dtype=object), labels, "text"), {"units": 4, "embedding_dim": 4}
    config = TrainConfig(architecture, params, epochs=3, batch_size=16, seed=5)
    done: list[int] = []
    with pytest.raises(JobCancelled):
        train(config, data, tmp_path, on_epoch=lambda p: done.append(p["epoch"]), should_stop=lambda: bool(done))
    resumed: list[int] = []
    outcome = train(config, data, tmp_path, on_epoch=lambda p: resumed.append(p["epoch"]))
    assert done == [1]
    assert resumed == [2, 3]
    assert outcome.epochs_run == 3
    uninterrupted = train(config, data, tmp_path / "straight").history
    for name, values in outcome.history.items():
        np.testing.assert_allclose(values[:1], uninterrupted[name][:1], rtol=0, atol=1e-6)
