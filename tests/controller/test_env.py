"""ArchitectureEnv: the architecture MDP on the Gymnasium API."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from controller import ArchitectureEnv
from spaces import load_space


def objective(architecture: dict) -> float:
    return 1.0 + len(architecture["layers"])


def masked_episode(env: ArchitectureEnv, rng: np.random.Generator, seed: int | None = None):
    """Play one episode choosing uniformly among the legal actions."""
    obs, info = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        assert env.observation_space.contains(obs)
        assert obs["step"] == steps
        assert info["action_mask"].dtype == np.int8 and info["action_mask"].any()
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, truncated, info = env.step(action)
        total, steps = total + reward, steps + 1
        assert not truncated and not info["illegal_action"]
        if terminated:
            return obs, total, info
        assert reward == 0.0


@pytest.mark.parametrize("space_name", [None, "cnn"])
def test_check_env_passes_without_warnings(space_name, space):
    env = ArchitectureEnv(load_space(space_name) if space_name else space, objective)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


def test_masked_episodes_build_legal_architectures_and_earn_the_objective(space):
    env = ArchitectureEnv(space, objective)
    rng = np.random.default_rng(0)
    depths = set()
    for _ in range(50):
        obs, total, info = masked_episode(env, rng)
        actions = [int(a) - 1 for a in obs["action_history"][: obs["step"]]]
        assert (obs["action_history"][obs["step"] :] == 0).all()
        assert info["architecture"] == space.decode(actions)
        assert total == objective(info["architecture"])
        depths.add(len(info["architecture"]["layers"]))
    assert depths == {0, 1, 2, 3}


def test_history_encodes_actions_plus_one(space):
    env = ArchitectureEnv(space, objective)
    obs, info = env.reset(seed=0)
    assert obs["step"] == 0 and not obs["action_history"].any()
    assert info["action_mask"].tolist() == [1, 1, 1, 0]  # cell: 3 choices of 4 padded actions
    obs, *_ = env.step(2)  # lstm
    obs, *_ = env.step(0)  # zero layers
    assert obs["action_history"][:2].tolist() == [3, 1] and obs["step"] == 2


def test_illegal_action_ends_the_episode(space):
    env = ArchitectureEnv(space, objective, illegal_action_reward=-5.0)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(3)  # "cell" has 3 choices
    assert (reward, terminated, truncated, info["illegal_action"]) == (-5.0, True, False, True)
    assert env.observation_space.contains(obs) and obs["step"] == 0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    obs, info = env.reset()
    assert obs["step"] == 0 and info["action_mask"].sum() == 3


def test_seeding_is_deterministic(space):
    def episodes(seed):
        env = ArchitectureEnv(space, objective)
        env.reset(seed=seed)
        rng = env.np_random  # seeded by reset; an agent may draw from it
        return [masked_episode(env, rng)[2]["architecture"] for _ in range(10)]

    assert episodes(3) == episodes(3)
    assert episodes(3) != episodes(4)
