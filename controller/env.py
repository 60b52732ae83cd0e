"""The architecture MDP as a Gymnasium environment (after NNI's `ModelEvaluationEnv`).

One episode builds one architecture, one decision per step:

- observation: {"action_history": MultiDiscrete([max_choices + 1] * max_steps), where entry t
  is 0 while decision t is not yet made and action + 1 after; "step": Discrete(max_steps + 1),
  the number of decisions made};
- action: Discrete(max_choices), padded: in a slot with fewer choices the extra actions are
  illegal; `info["action_mask"]` (np.int8, 1 = legal) comes with every observation;
- reward: 0 until the architecture is complete, then `objective(architecture)`, and the
  episode terminates with `info["architecture"]`;
- an illegal action terminates the episode with `illegal_action_reward` and
  `info["illegal_action"] = True`.

The environment itself draws no random numbers; `reset(seed=...)` seeds `np_random` for
objectives or wrappers that want it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces as gym_spaces


class ArchitectureEnv(gym.Env):
    """Search `space` with any Gymnasium agent.

    Args:
        space: The `spaces.Space` whose architectures the episodes build.
        objective: Maps a finished architecture (a dict) to its reward (a float).
        illegal_action_reward: Reward of an episode ended by an illegal action.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        space,
        objective: Callable[[dict], float],
        illegal_action_reward: float = -1.0,
    ) -> None:
        self.space = space
        self.objective = objective
        self.illegal_action_reward = float(illegal_action_reward)
        n, k = space.max_steps, space.max_choices
        self.observation_space = gym_spaces.Dict(
            {
                "action_history": gym_spaces.MultiDiscrete(np.full(n, k + 1, dtype=np.int64)),
                "step": gym_spaces.Discrete(n + 1),
            }
        )
        self.action_space = gym_spaces.Discrete(k)
        self._actions: list[int] = []
        self._done = True

    def _observation(self) -> dict[str, Any]:
        history = np.zeros(self.space.max_steps, dtype=np.int64)
        history[: len(self._actions)] = np.asarray(self._actions, dtype=np.int64) + 1
        return {"action_history": history, "step": len(self._actions)}

    def _mask(self) -> np.ndarray:
        return np.asarray(self.space.action_mask(self._actions), dtype=np.int8)

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self._actions, self._done = [], False
        return self._observation(), {"action_mask": self._mask()}

    def step(self, action) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        action = int(action)
        mask = self._mask()
        if not (0 <= action < len(mask) and mask[action]):
            self._done = True
            info: dict[str, Any] = {"action_mask": np.zeros_like(mask), "illegal_action": True}
            return self._observation(), self.illegal_action_reward, True, False, info
        self._actions.append(action)
        info = {"action_mask": self._mask(), "illegal_action": False}
        if not self.space.is_complete(self._actions):
            return self._observation(), 0.0, False, False, info
        self._done = True
        architecture = self.space.decode(self._actions)
        info["architecture"] = architecture
        return self._observation(), float(self.objective(architecture)), True, False, info
