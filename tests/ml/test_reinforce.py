"""Agents on real TensorFlow and real Gymnasium environments: CartPole learned to the target, budgets, cancel,
resume, the saved policy, and a board-like game (Blackjack)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.datasets import load_builtin
from ml.reinforce import STATE, evaluate, train_agent
from ml.specs import TrainSpec, parse
from ml.training import TrainConfig, TrainOutcome, train
from tensorq.core.errors import InvalidRequest, JobCancelled, OutOfRange


def agent_spec(name: str = "CartPole-v1", params: dict | None = None, **environment: object) -> TrainSpec:
    """A seeded ``policy`` train spec in environment ``name`` with these budgets, checked as the API does."""
    spec = {"architecture": "policy", "params": params or {}, "seed": 0, "environment": {"name": name, **environment}}
    return parse(TrainSpec, spec, where="spec")


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainSpec, TrainOutcome, list[dict]]:
    """A CartPole agent trained once to a mean greedy return of 195 over 100 episodes, with its progress."""
    spec = agent_spec(max_steps=100_000, target_return=195.0, eval_episodes=100)
    reports: list[dict] = []
    outcome = train_agent(spec, spec.environment, tmp_path_factory.mktemp("cartpole"), on_epoch=reports.append)
    return spec, outcome, reports


def test_cartpole_agent_reaches_195_within_its_budget(cartpole: tuple[TrainSpec, TrainOutcome, list[dict]]) -> None:
    spec, outcome, reports = cartpole
    metrics = outcome.metrics
    print(
        f"\ncartpole: mean return {metrics['mean_return']:.1f} over 100 episodes"
        f" (random {metrics['random_return']:.1f}) after {metrics['env_steps']:.0f} steps,"
        f" {metrics['episodes']:.0f} episodes, {metrics['train_seconds']}s"
    )
    assert metrics["mean_return"] >= 195.0
    assert metrics["reached_target"] == 1.0
    assert outcome.notes["stopped_by"] == "target_return"
    assert metrics["env_steps"] <= spec.environment.max_steps
    assert 15.0 <= metrics["random_return"] <= 30.0  # a random policy scores about 22
    assert metrics["eval_episodes"] == 100
    # One progress report per iteration, its mean return rising from a random policy's.
    assert [r["epoch"] for r in reports] == list(range(1, len(reports) + 1))
    assert reports[0]["mean_return"] < 60.0 < max(r["mean_return"] for r in reports)
    assert outcome.history["mean_return"] == [r["mean_return"] for r in reports]
    assert outcome.epochs_run == len(reports)


def test_the_saved_policy_loads_safely_and_plays_as_scored(
    cartpole: tuple[TrainSpec, TrainOutcome, list[dict]],
) -> None:
    spec, outcome, _ = cartpole
    policy = keras.models.load_model(outcome.model_path, safe_mode=True)
    probabilities = np.asarray(policy(np.zeros((3, 4), dtype=np.float32)))
    assert probabilities.shape == (3, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    returns = evaluate(lambda obs: np.asarray(policy(obs)), "CartPole-v1", 10, seed=123)
    assert returns.mean() >= 150.0  # the loaded policy plays: far above a random policy's ~22
    signature = outcome.signature
    assert signature["task"] == "reinforce"
    assert signature["input_shape"] == [4]
    assert signature["class_names"] == ["push_left", "push_right"]
    assert signature["feature_names"][2] == "pole_angle"


def test_a_step_budget_stops_training(tmp_path: Path) -> None:
    spec = agent_spec(max_steps=256, eval_episodes=3, params={"steps_per_iteration": 128, "num_envs": 2})
    outcome = train_agent(spec, spec.environment, tmp_path)
    assert outcome.notes["stopped_by"] == "max_steps"
    assert outcome.metrics["env_steps"] == 256
    assert outcome.epochs_run == 2
    assert "reached_target" not in outcome.metrics


def test_an_episode_budget_stops_training(tmp_path: Path) -> None:
    spec = agent_spec(max_episodes=3, eval_episodes=2, params={"steps_per_iteration": 64, "num_envs": 4})
    outcome = train_agent(spec, spec.environment, tmp_path)
    assert outcome.notes["stopped_by"] == "max_episodes"
    assert outcome.metrics["episodes"] >= 3


def test_a_stop_request_cancels_and_a_rerun_resumes(tmp_path: Path) -> None:
    params = {"steps_per_iteration": 64, "num_envs": 2}
    first = agent_spec(max_steps=128, eval_episodes=2, params=params)
    train_agent(first, first.environment, tmp_path)
    state = json.loads((tmp_path / STATE).read_text())
    assert state["iteration"] == 2
    assert state["steps"] == 128
    with pytest.raises(JobCancelled):
        train_agent(first, first.environment, tmp_path / "other", should_stop=lambda: True)
    more = agent_spec(max_steps=256, eval_episodes=2, params=params)
    reports: list[dict] = []
    outcome = train_agent(more, more.environment, tmp_path, on_epoch=reports.append)
    assert [r["epoch"] for r in reports] == [3, 4]  # resumed after the two iterations already done
    assert outcome.metrics["env_steps"] == 256
    assert len(outcome.history["mean_return"]) == 4


def test_blackjack_agent_plays_a_board_like_game(tmp_path: Path) -> None:
    spec = agent_spec("Blackjack-v1", max_steps=4096, eval_episodes=1000, params={"steps_per_iteration": 512})
    outcome = train_agent(spec, spec.environment, tmp_path)
    metrics = outcome.metrics
    assert -0.45 <= metrics["random_return"] <= -0.2  # hitting at random loses about a third of a bet
    # It learned when to stick: about -0.17 per hand (the best play loses about 0.05); the standard error of a
    # 1000-hand mean is about 0.03.
    assert metrics["mean_return"] >= metrics["random_return"] + 0.08
    assert outcome.signature["feature_names"] == ["player_sum", "dealer_card", "usable_ace"]
    assert outcome.signature["class_names"] == ["stick", "hit"]


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        ({"max_steps": 0}, "spec.environment.max_steps"),
        ({"max_episodes": 0}, "spec.environment.max_episodes"),
        ({"max_seconds": 10**6}, "spec.environment.max_seconds"),
        ({"eval_episodes": 5000}, "spec.environment.eval_episodes"),
    ],
)
def test_budgets_out_of_range_are_refused_naming_the_field(budget: dict, field: str) -> None:
    with pytest.raises(OutOfRange) as caught:
        agent_spec(**budget)
    assert [d["field"] for d in caught.value.details] == [field]


def test_an_unknown_environment_or_a_dataset_for_a_policy_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        agent_spec("Pong-v5")
    assert caught.value.details[0]["field"] == "spec.environment.name"
    assert "known: CartPole-v1, Blackjack-v1" in caught.value.details[0]["message"]
    policy = {"architecture": "policy", "environment": {"name": "CartPole-v1"}}
    policy_on_data = {**policy, "dataset": "builtin:iris"}
    for spec, message in [
        (policy_on_data, "not on a 'dataset'"),
        ({"architecture": "mlp", "environment": {"name": "CartPole-v1"}}, "trains on a 'dataset'"),
        ({**policy, "class_weight": "balanced"}, "class_weight are for training on a dataset, not a policy"),
        ({**policy, "label_column": "y"}, "label_column are for training on a dataset"),
    ]:
        with pytest.raises(InvalidRequest) as caught:
            parse(TrainSpec, spec)
        assert message in caught.value.details[0]["message"]
    with pytest.raises(InvalidRequest, match="trains in an environment"):
        train(TrainConfig("policy", epochs=1), load_builtin("iris"), Path("unused"))
