"""The Gymnasium environments an agent trains in, and their observations as rows of numbers.

Each environment of ``ml.catalog.ENVIRONMENTS`` is made by Gymnasium by name; its observation (a ``Box`` vector,
or a tuple of ``Discrete`` values such as Blackjack's) is one float32 row, the policy network's input.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ml.catalog import ENVIRONMENTS
from tensorq.core.errors import InvalidRequest


def make(name: str, seed: int | None = None) -> gym.Env:
    """A fresh ``name`` environment, its spaces seeded with ``seed``; an unknown name lists the known ones."""
    if name not in ENVIRONMENTS:
        known = list(ENVIRONMENTS)
        raise InvalidRequest(f"unknown environment '{name}'; known: {', '.join(known)}", details={"known": known})
    env = gym.make(name)
    env.action_space.seed(seed)
    return env


def observation_row(observation: Any) -> np.ndarray:
    """An observation as a float32 row: a vector as it is, a tuple of discrete values as their numbers."""
    if isinstance(observation, tuple):
        return np.asarray([float(v) for v in observation], dtype=np.float32)
    return np.asarray(observation, dtype=np.float32).reshape(-1)


def action_count(env: gym.Env) -> int:
    """How many actions a ``Discrete`` action space offers."""
    space = env.action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise InvalidRequest("agents are trained for environments with discrete actions")
    return int(space.n)


class Batch:
    """``n`` copies of one environment stepped together; an episode that ends is reset at once and its return
    recorded. ``step`` answers rewards, whether each episode ended, and the value-bootstrap observations of
    episodes cut short by a time limit (None where they were not)."""

    def __init__(self, name: str, n: int, seed: int) -> None:
        self.envs = [make(name, seed + i) for i in range(n)]
        self.obs = np.stack([observation_row(env.reset(seed=seed + i)[0]) for i, env in enumerate(self.envs)])
        self.running = np.zeros(n, dtype=np.float64)
        self.lengths = np.zeros(n, dtype=np.int64)
        self.returns: list[float] = []  # of the episodes finished so far
        self.steps = 0

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
        """Step each copy with its action; rewards, episode-ended flags, truncated episodes' last observations."""
        rewards = np.zeros(len(self.envs), dtype=np.float32)
        ended = np.zeros(len(self.envs), dtype=bool)
        cut: list[np.ndarray | None] = [None] * len(self.envs)
        for i, env in enumerate(self.envs):
            obs, reward, terminated, truncated, _ = env.step(int(actions[i]))
            rewards[i] = float(reward)
            self.running[i] += float(reward)
            row = observation_row(obs)
            if terminated or truncated:
                ended[i] = True
                if truncated and not terminated:
                    cut[i] = row
                self.returns.append(float(self.running[i]))
                self.running[i] = 0.0
                row = observation_row(env.reset()[0])
            self.obs[i] = row
        self.steps += len(self.envs)
        return rewards, ended, cut

    def close(self) -> None:
        """Close every copy."""
        for env in self.envs:
            env.close()
