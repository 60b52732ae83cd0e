"""`ControllerSearcher`: a Ray Tune `Searcher` that asks a controller and tells it rewards."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ray.tune.search import Searcher

from controller import Candidate, Controller

__all__ = ["ControllerSearcher", "SearchError"]

Validator = Callable[[dict[str, Any]], "str | None"]
"""Returns why an architecture cannot be built, or None when it can."""


class SearchError(RuntimeError):
    """The search cannot go on (e.g. the controller proposes nothing buildable)."""


class ControllerSearcher(Searcher):
    """Thin adapter: suggest = ``controller.ask()``, on_trial_complete = ``controller.tell()``.

    Architectures that `validate` rejects never reach a worker: the controller is told
    `invalid_reward` at once and asked again, and `on_invalid` hears of it (for tracking).

    Args:
        controller: Any registered controller.
        setup: Static settings copied into every trial's config (task, epochs, ...).
        validate: Checks an architecture against the task's shapes.
        on_invalid: Called with (candidate, reason) for each rejected proposal.
        invalid_reward: Reward told for an architecture that cannot be built.
        max_invalid_in_row: Give up after this many unbuildable proposals in a row.
        seed: Child training seeds are ``seed * 100003 + candidate id``.
    """

    def __init__(
        self,
        controller: Controller,
        setup: dict[str, Any],
        validate: Validator,
        on_invalid: Callable[[Candidate, str], None] | None = None,
        invalid_reward: float = 0.0,
        max_invalid_in_row: int = 1000,
        seed: int = 0,
    ):
        super().__init__(metric="reward", mode="max")
        self.controller = controller
        self.setup = setup
        self.validate = validate
        self.on_invalid = on_invalid or (lambda candidate, reason: None)
        self.invalid_reward = invalid_reward
        self.max_invalid_in_row = max_invalid_in_row
        self.seed = seed
        self.live: dict[str, Candidate] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for _ in range(self.max_invalid_in_row):
            candidate = self.controller.ask()
            reason = self.validate(candidate.architecture)
            if reason is None:
                break
            self.controller.tell(candidate, self.invalid_reward)
            self.on_invalid(candidate, reason)
        else:
            raise SearchError(
                f"the controller proposed {self.max_invalid_in_row} architectures in a row that "
                f"cannot be built for this task; last reason: {reason}"
            )
        self.live[trial_id] = candidate
        return {
            "architecture": candidate.architecture,
            "candidate_id": candidate.id,
            "train_seed": self.seed * 100003 + candidate.id,
            "setup": self.setup,
        }

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        candidate = self.live.pop(trial_id, None)
        if candidate is None:
            return
        reward = None if error or not result else result.get("reward")
        if reward is not None and not math.isfinite(float(reward)):
            reward = None
        self.controller.tell(candidate, reward)

    def save(self, checkpoint_path: str) -> None:
        torch.save({"controller": self.controller.state_dict()}, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        state = torch.load(Path(checkpoint_path), weights_only=True)
        self.controller.load_state_dict(state["controller"])
