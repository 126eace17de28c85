"""Agents: a policy network trained by PPO (clipped surrogate, GAE) in a Gymnasium environment.

Each iteration steps ``num_envs`` copies of the environment for ``steps_per_iteration`` steps in all, sampling
actions from the policy, then learns from that rollout. The mean return of the episodes finished in the
iteration is its progress. Training stops at the first budget spent (environment steps, episodes, wall time),
or once the greedy policy reaches the target return; the policy (a ``.keras`` of observations to action
probabilities) is then scored over ``eval_episodes`` greedy episodes and saved. After each iteration the
weights and counters are checkpointed, so that a re-queued job resumes where it left off.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ml import builders
from ml.architectures.policy import logits_of, value_network
from ml.catalog import ENVIRONMENT_ACTIONS, ENVIRONMENT_FEATURES
from ml.environments import Batch, action_count, make, observation_row
from ml.specs import Environment, PolicyParams, TrainOptions
from ml.training import MODEL, TrainOutcome, checked, optimizer_of
from tensorq.core.errors import JobCancelled

STATE = "agent.json"
WEIGHTS = "agent.weights.npz"
CHECKPOINT_FILES = (WEIGHTS, STATE)  # what an iteration leaves for a resumed attempt (stored after each one)
TRAILING = 20  # training episodes whose mean return decides when the greedy policy is evaluated
EVAL_SEED = 10_000  # the evaluation episodes' seeds start at the job's seed plus this (the same ones each time)
RANDOM_SEED = 20_000  # and the random policy's at the seed plus this


@dataclass
class _Run:
    """The counters and history of a training run (what a checkpoint holds besides the weights)."""

    iteration: int = 0
    steps: int = 0
    episodes: int = 0
    seconds: float = 0.0
    returns: list[float] = field(default_factory=list)  # the last TRAILING training episodes' returns
    history: dict[str, list[float]] = field(default_factory=dict)
    stopped_by: str | None = None


class _Agent:
    """The policy and its critic, one optimizer, and the traced act and update steps."""

    def __init__(self, policy: keras.Model, params: PolicyParams, features: int, optimizer: Any) -> None:
        self.policy, self.params = policy, params
        self.logits = logits_of(policy)
        self.value = value_network((features,), params)
        self.variables = [*self.logits.trainable_variables, *self.value.trainable_variables]
        self.optimizer = optimizer
        self.optimizer.build(self.variables)
        self._act = tf.function(self._act_graph, reduce_retracing=True)
        self._update = tf.function(self._update_graph, reduce_retracing=True)

    def _act_graph(self, obs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self.logits(obs, training=False), tf.squeeze(self.value(obs, training=False), -1)

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits and values of a batch of observations."""
        logits, values = self._act(tf.convert_to_tensor(obs, dtype=tf.float32))
        return logits.numpy(), values.numpy()

    def _update_graph(self, obs: Any, actions: Any, old_logp: Any, advantages: Any, returns: Any) -> tf.Tensor:
        p = self.params
        with tf.GradientTape() as tape:
            logp_all = tf.nn.log_softmax(self.logits(obs, training=True))
            logp = tf.gather(logp_all, actions, batch_dims=1)
            ratio = tf.exp(logp - old_logp)
            clipped = tf.clip_by_value(ratio, 1.0 - p.clip_ratio, 1.0 + p.clip_ratio)
            policy_loss = -tf.reduce_mean(tf.minimum(ratio * advantages, clipped * advantages))
            entropy = -tf.reduce_mean(tf.reduce_sum(tf.exp(logp_all) * logp_all, axis=1))
            value_loss = tf.reduce_mean((returns - tf.squeeze(self.value(obs, training=True), -1)) ** 2)
            loss = policy_loss + p.value_coef * value_loss - p.entropy_coef * entropy
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, self.variables), 0.5)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return loss

    def update(self, batch: dict[str, np.ndarray], rng: np.random.Generator) -> float:
        """PPO's passes over a rollout in shuffled minibatches; the mean loss."""
        size = len(batch["actions"])
        per = max(size // self.params.minibatches, 1)
        losses = []
        for _ in range(self.params.update_epochs):
            order = rng.permutation(size)
            for start in range(0, size - per + 1, per):
                rows = order[start : start + per]
                part = [tf.convert_to_tensor(batch[k][rows]) for k in ("obs", "actions", "logp", "adv", "ret")]
                losses.append(float(self._update(*part)))
        return float(np.mean(losses))

    def weights(self) -> list[np.ndarray]:
        """The policy's and the critic's weights."""
        return [*self.policy.get_weights(), *self.value.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Restore ``weights()``."""
        cut = len(self.policy.get_weights())
        self.policy.set_weights(weights[:cut])
        self.value.set_weights(weights[cut:])


def sample(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row drawn from the softmax of ``logits`` (the Gumbel-max trick)."""
    return np.argmax(logits - np.log(-np.log(rng.uniform(1e-12, 1.0, logits.shape))), axis=1)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities of ``logits``."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _rollout(agent: _Agent, envs: Batch, steps: int, rng: np.random.Generator, stop: Callable[[], None]) -> dict:
    """``steps`` rows per environment copy, with the advantages (GAE) and returns to learn from."""
    n, gamma, lam = len(envs.envs), agent.params.gamma, agent.params.gae_lambda
    obs = np.zeros((steps, n, envs.obs.shape[1]), dtype=np.float32)
    actions = np.zeros((steps, n), dtype=np.int32)
    logps = np.zeros((steps, n), dtype=np.float32)
    values = np.zeros((steps + 1, n), dtype=np.float32)
    rewards = np.zeros((steps, n), dtype=np.float32)
    ended = np.zeros((steps, n), dtype=bool)
    for t in range(steps):
        if t % 64 == 0:
            stop()
        obs[t] = envs.obs
        logits, values[t] = agent.act(envs.obs)
        actions[t] = sample(logits, rng)
        logps[t] = log_softmax(logits)[np.arange(n), actions[t]]
        rewards[t], ended[t], cut = envs.step(actions[t])
        for i, last in enumerate(cut):  # a time limit, not a failure: the episode's value goes on
            if last is not None:
                rewards[t, i] += gamma * float(agent.act(last[None])[1][0])
    values[steps] = agent.act(envs.obs)[1]
    advantages = np.zeros((steps, n), dtype=np.float32)
    running = np.zeros(n, dtype=np.float32)
    for t in reversed(range(steps)):
        going = 1.0 - ended[t]
        delta = rewards[t] + gamma * values[t + 1] * going - values[t]
        running = delta + gamma * lam * going * running
        advantages[t] = running
    returns = advantages + values[:steps]
    adv = advantages.reshape(-1)
    return {
        "obs": obs.reshape(steps * n, -1),
        "actions": actions.reshape(-1),
        "logp": logps.reshape(-1),
        "adv": ((adv - adv.mean()) / (adv.std() + 1e-8)).astype(np.float32),
        "ret": returns.reshape(-1),
    }


def evaluate(
    policy: Callable[[np.ndarray], np.ndarray] | None,
    name: str,
    episodes: int,
    seed: int,
    stop: Callable[[], None] | None = None,
) -> np.ndarray:
    """The returns of ``episodes`` episodes played at once, each copy seeded apart: the greedy action of
    ``policy`` (a function of observations to logits), or uniformly random actions when it is None; ``stop``
    is called every 32 steps (it raises to end the job)."""
    envs = [make(name, seed + i) for i in range(episodes)]
    obs = np.stack([observation_row(env.reset(seed=seed + i)[0]) for i, env in enumerate(envs)])
    returns = np.zeros(episodes, dtype=np.float64)
    active = np.ones(episodes, dtype=bool)
    step = 0
    while active.any():
        if stop is not None and step % 32 == 0:
            stop()
        step += 1
        rows = np.flatnonzero(active)
        if policy is None:
            actions = [int(envs[i].action_space.sample()) for i in rows]
        else:
            actions = np.argmax(policy(obs[rows]), axis=1).tolist()
        for i, action in zip(rows, actions, strict=True):
            observation, reward, terminated, truncated, _ = envs[i].step(action)
            returns[i] += float(reward)
            obs[i] = observation_row(observation)
            active[i] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns


def _save_state(workdir: Path, agent: _Agent, run: _Run) -> None:
    """Checkpoint the weights, then the counters, each atomically."""
    tmp = workdir / f".{WEIGHTS}.tmp.npz"
    np.savez(tmp, **{f"w{i}": w for i, w in enumerate(agent.weights())})
    os.replace(tmp, workdir / WEIGHTS)
    state = {k: v for k, v in vars(run).items() if k != "stopped_by"}
    (workdir / f".{STATE}.tmp").write_text(json.dumps(state))
    os.replace(workdir / f".{STATE}.tmp", workdir / STATE)


def _load_state(workdir: Path, agent: _Agent) -> _Run:
    """The checkpointed run (its weights restored into ``agent``), or a fresh one."""
    state_path, weights_path = workdir / STATE, workdir / WEIGHTS
    if not (state_path.is_file() and weights_path.is_file()):
        return _Run()
    try:
        run = _Run(**json.loads(state_path.read_text()))
        with np.load(weights_path, allow_pickle=False) as archive:
            agent.set_weights([archive[f"w{i}"] for i in range(len(archive.files))])
    except (ValueError, TypeError, KeyError):
        return _Run()
    return run


def _spent(run: _Run, env: Environment, started: float) -> str | None:
    """The budget spent (``max_steps``, ``max_episodes``, ``max_seconds``), or None."""
    if run.steps >= env.max_steps:
        return "max_steps"
    if run.episodes >= env.max_episodes:
        return "max_episodes"
    if run.seconds + (time.monotonic() - started) >= env.max_seconds:
        return "max_seconds"
    return None


def _greedy(agent: _Agent) -> Callable[[np.ndarray], np.ndarray]:
    return lambda obs: agent.act(obs)[0]


def _reached(agent: _Agent, env: Environment, run: _Run, seed: int, stop: Callable[[], None]) -> np.ndarray | None:
    """The evaluation's returns when the greedy policy reaches the target return (tried once the training
    episodes reach it), else None."""
    if env.target_return is None or len(run.returns) < min(TRAILING, 5):
        return None
    if float(np.mean(run.returns)) < env.target_return:
        return None
    scores = evaluate(_greedy(agent), env.name, env.eval_episodes, seed + EVAL_SEED, stop)
    return scores if float(np.mean(scores)) >= env.target_return else None


def _iterate(agent: _Agent, envs: Batch, run: _Run, rng: np.random.Generator, stop: Callable[[], None]) -> dict:
    """One iteration: a rollout, then learning from it; its figures."""
    before = len(envs.returns)
    per_env = max(agent.params.steps_per_iteration // len(envs.envs), 1)
    batch = _rollout(agent, envs, per_env, rng, stop)
    loss = agent.update(batch, rng)
    finished = envs.returns[before:]
    run.returns = [*run.returns, *finished][-TRAILING:]
    run.iteration += 1
    run.steps += per_env * len(envs.envs)
    run.episodes += len(finished)
    mean = float(np.mean(finished)) if finished else (float(np.mean(run.returns)) if run.returns else 0.0)
    figures = {"loss": loss, "mean_return": mean, "episodes": float(run.episodes), "env_steps": float(run.steps)}
    for name, value in figures.items():
        run.history.setdefault(name, []).append(value)
    return figures


def iterations(params: PolicyParams, env: Environment) -> int:
    """The most iterations ``max_steps`` allows."""
    per_iteration = max(params.steps_per_iteration // params.num_envs, 1) * params.num_envs
    return max(-(-env.max_steps // per_iteration), 1)


def train_agent(
    config: TrainOptions,
    env: Environment,
    workdir: Path,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train a policy per ``config`` (architecture ``policy``) in ``env`` within its budgets, in ``workdir``."""
    try:
        return _train_agent(checked(config), env, Path(workdir), on_epoch, should_stop)
    finally:
        gc.collect()


def _train_agent(
    config: TrainOptions,
    env: Environment,
    workdir: Path,
    on_epoch: Callable[[dict], None] | None,
    should_stop: Callable[[], bool] | None,
) -> TrainOutcome:
    params = config.typed_params
    assert isinstance(params, PolicyParams)
    seed = config.seed if config.seed is not None else 0
    keras.utils.set_random_seed(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    probe = make(env.name)
    actions = action_count(probe)
    features = len(observation_row(probe.reset(seed=seed)[0]))
    probe.close()
    policy = builders.get("policy")((features,), actions, params)
    agent = _Agent(policy, params, features, optimizer_of(config.optimizer, config.learning_rate))
    run = _load_state(workdir, agent)
    rng = np.random.default_rng([seed, run.iteration])
    envs = Batch(env.name, params.num_envs, seed + 1000 * (run.iteration + 1))
    total, started = iterations(params, env), time.monotonic()
    scores = None

    def stop() -> None:
        if should_stop is not None and should_stop():
            raise JobCancelled("cancelled")

    try:
        while (stopped_by := _spent(run, env, started)) is None:
            figures = _iterate(agent, envs, run, rng, stop)
            if on_epoch is not None:
                on_epoch({"epoch": run.iteration, "epochs": total, **figures})
            scores = _reached(agent, env, run, seed, stop)
            if scores is not None:
                stopped_by = "target_return"
                break
            run.seconds += time.monotonic() - started
            started = time.monotonic()
            _save_state(workdir, agent, run)
    finally:
        envs.close()
    run.seconds += time.monotonic() - started
    if scores is None:
        scores = evaluate(_greedy(agent), env.name, env.eval_episodes, seed + EVAL_SEED, stop)
    random_scores = evaluate(None, env.name, env.eval_episodes, seed + RANDOM_SEED, stop)
    return _outcome(agent, env, run, (stopped_by, scores, random_scores), workdir, features, actions)


def _outcome(
    agent: _Agent,
    env: Environment,
    run: _Run,
    end: tuple[str, np.ndarray, np.ndarray],
    workdir: Path,
    features: int,
    actions: int,
) -> TrainOutcome:
    """The greedy policy's evaluation returns beside a random policy's (over the same number of episodes),
    the policy saved, and its description; ``end`` is why training stopped and those returns."""
    stopped_by, scores, random_scores = end
    metrics: dict[str, float] = {
        "mean_return": float(np.mean(scores)),
        "std_return": float(np.std(scores)),
        "random_return": float(np.mean(random_scores)),
        "eval_episodes": env.eval_episodes,
        "env_steps": run.steps,
        "episodes": run.episodes,
        "iterations": run.iteration,
        "train_seconds": round(run.seconds, 3),
    }
    if env.target_return is not None:
        metrics["reached_target"] = float(metrics["mean_return"] >= env.target_return)
    path = workdir / MODEL
    tmp = workdir / f".{MODEL}.tmp.keras"
    agent.policy.save(tmp)
    tmp.replace(path)
    signature = {
        "task": "reinforce",
        "input_shape": [features],
        "input_dtype": "float32",
        "num_classes": actions,
        "kind": "observations",
        "environment": env.name,
        "feature_names": list(ENVIRONMENT_FEATURES.get(env.name, ())) or None,
        "class_names": list(ENVIRONMENT_ACTIONS.get(env.name, ())) or None,
    }
    notes = {"stopped_by": stopped_by, "environment": env.name}
    return TrainOutcome(path, metrics, run.history, [features], actions, run.iteration, signature, notes)
