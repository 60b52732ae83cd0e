"""`ControllerSearcher`: a Ray Tune `Searcher` that asks a controller and tells it rewards."""

from __future__ import annotations

import json
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


RewardFn = Callable[[dict[str, Any]], "float | None"]
"""The reward of a finished child from its final result."""


def default_reward(result: dict[str, Any]) -> float | None:
    """The ``reward`` the child reported."""
    return result.get("reward")


class ControllerSearcher(Searcher):
    """Thin adapter: suggest = ``controller.ask()``, on_trial_complete = ``controller.tell()``.

    Proposals that need no training never reach a worker:

    - an architecture that `validate` rejects is told `invalid_reward` at once;
    - with ``duplicates="reuse"``, an architecture whose canonical key was already trained is
      told the cached reward, and one that is training now is told the same reward when that
      training ends (`on_reuse` hears of each);
    - with ``duplicates="retrain"``, duplicates train again (new seed) and the controller is
      told the mean reward over every training of that architecture.

    The budget (Tune's ``num_samples``) therefore counts trainings. After `max_skipped_in_row`
    proposals in a row that need no training, the search ends: with an error when they were
    unbuildable, quietly when they were all known (the controller has converged).

    With ``confirm`` > 0, once ``budget`` trainings have been suggested and all of them have
    ended, the ``confirm`` architectures of highest mean reward train ``confirm_runs`` more
    times each with new seeds (configs marked ``confirmation``; the controller is not told), so
    that the best is chosen on several trainings rather than on its luckiest one. Until then
    `suggest` returns None (Tune asks again later).

    Args:
        controller: Any registered controller.
        setup: Static settings copied into every trial's config (task, epochs, ...).
        validate: Checks an architecture against the task's shapes.
        key_of: Canonical key of an architecture (``space.key``).
        on_invalid: Called with (candidate, reason) for each rejected proposal.
        on_reuse: Called with (candidate, key, reward) for each proposal answered from cache.
        reward_of: The reward of a finished child from its final result.
        duplicates: ``"reuse"`` or ``"retrain"``.
        invalid_reward: Reward told for an architecture that cannot be built.
        max_skipped_in_row: See above.
        seed: Child training seeds are ``seed * 100003 + candidate id``.
        include: Architectures suggested first, before the controller is asked; their results
            are cached like any child's but not told to the controller (it did not propose them).
        budget: Trainings suggested before the confirmation (needed with ``confirm``).
        confirm: Architectures confirmed after the budget (0: none).
        confirm_runs: Extra trainings of each confirmed architecture.
    """

    def __init__(
        self,
        controller: Controller,
        setup: dict[str, Any],
        validate: Validator,
        key_of: Callable[[dict[str, Any]], str] | None = None,
        on_invalid: Callable[[Candidate, str], None] | None = None,
        on_reuse: Callable[[Candidate, str, float | None], None] | None = None,
        reward_of: RewardFn = default_reward,
        duplicates: str = "reuse",
        invalid_reward: float = 0.0,
        max_skipped_in_row: int = 1000,
        seed: int = 0,
        include: list[dict[str, Any]] | None = None,
        budget: int | None = None,
        confirm: int = 0,
        confirm_runs: int = 2,
    ):
        super().__init__(metric="reward", mode="max")
        if duplicates not in ("reuse", "retrain"):
            raise ValueError(f"duplicates must be 'reuse' or 'retrain', got {duplicates!r}")
        if confirm and budget is None:
            raise ValueError("confirm needs the budget of trainings before it")
        self.controller = controller
        self.setup = setup
        self.validate = validate
        self.key_of = key_of or (lambda arch: json.dumps(arch, sort_keys=True))
        self.on_invalid = on_invalid or (lambda candidate, reason: None)
        self.on_reuse = on_reuse or (lambda candidate, key, reward: None)
        self.reward_of = reward_of
        self.duplicates = duplicates
        self.invalid_reward = invalid_reward
        self.max_skipped_in_row = max_skipped_in_row
        self.seed = seed
        # trial id -> (candidate, key); the candidate is None for an included architecture
        self.live: dict[str, tuple[Candidate | None, str]] = {}
        self.rewards: dict[str, list[float]] = {}  # key -> rewards of finished trainings
        self.waiting: dict[str, list[Candidate]] = {}  # key in training -> duplicates
        self.exhausted = False  # ended early: the controller proposed nothing new
        self.included = list(include or [])
        self.included_count = 0
        self.budget, self.confirm, self.confirm_runs = budget, confirm, confirm_runs
        self.suggested = 0  # trainings suggested before the confirmation
        self.architectures: dict[str, dict[str, Any]] = {}  # key -> architecture
        self.confirmations: list[str] | None = None  # keys still to confirm, once planned
        self.confirmed = 0  # confirmation trainings suggested

    @property
    def planned(self) -> int:
        """Trainings this searcher will suggest in all: the budget and the confirmations (as
        many as planned, or at most ``confirm * confirm_runs`` before they are planned)."""
        budget = self.budget if self.budget is not None else self.suggested
        if not self.confirm:
            return budget
        if self.confirmations is None:
            return budget + self.confirm * self.confirm_runs
        return budget + self.confirmed + len(self.confirmations)

    def _training(self, key: str) -> bool:
        return any(k == key for _, k in self.live.values())

    def _suggest_included(self, trial_id: str) -> dict[str, Any]:
        architecture = self.included.pop(0)
        self.live[trial_id] = (None, self.key_of(architecture))
        self.included_count += 1
        candidate_id = -self.included_count  # never a controller's id (those count up from 0)
        return {
            "architecture": architecture,
            "candidate_id": candidate_id,
            "train_seed": self.seed * 100003 + 50000 - candidate_id,
            "included": True,
            "setup": self.setup,
        }

    def _suggest_confirmation(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.confirmations is None:
            if self.live:
                return None  # the ranking is not final until every training has ended
            self.budget = self.suggested  # the controller may have run out before the budget
            means = {k: sum(r) / len(r) for k, r in self.rewards.items() if r}
            best = sorted(means, key=means.get, reverse=True)[: self.confirm]
            self.confirmations = [k for k in best for _ in range(self.confirm_runs)]
        if not self.confirmations:
            return Searcher.FINISHED
        key = self.confirmations.pop(0)
        self.live[trial_id] = (None, key)
        self.confirmed += 1
        return {
            "architecture": self.architectures[key],
            "candidate_id": -(100000 + self.confirmed),  # apart from controllers' and included
            "train_seed": self.seed * 100003 + 70000 + self.confirmed,
            "confirmation": True,
            "setup": self.setup,
        }

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if self.confirm and (self.exhausted or self.suggested >= self.budget):
            return self._suggest_confirmation(trial_id)
        config = self._suggest_trial(trial_id)
        if isinstance(config, dict):
            self.suggested += 1
            self.architectures.setdefault(
                self.key_of(config["architecture"]), config["architecture"]
            )
        elif config == Searcher.FINISHED and self.confirm:
            return self._suggest_confirmation(trial_id)
        return config

    def _suggest_trial(self, trial_id: str) -> dict[str, Any] | str:
        if self.included:
            return self._suggest_included(trial_id)
        reason = None
        for _ in range(self.max_skipped_in_row):
            candidate = self.controller.ask()
            reason = self.validate(candidate.architecture)
            if reason is not None:
                self.controller.tell(candidate, self.invalid_reward)
                self.on_invalid(candidate, reason)
                continue
            key = self.key_of(candidate.architecture)
            if self.duplicates == "reuse" and key in self.rewards:
                reward = self._told_reward(key, None)
                self.controller.tell(candidate, reward)
                self.on_reuse(candidate, key, reward)
                continue
            if self.duplicates == "reuse" and self._training(key):
                self.waiting.setdefault(key, []).append(candidate)
                continue
            break
        else:
            if reason is None:
                self.exhausted = True
                return Searcher.FINISHED  # only known architectures: nothing new to train
            raise SearchError(
                f"the controller proposed {self.max_skipped_in_row} architectures in a row that "
                f"cannot be built for this task; last reason: {reason}"
            )
        self.live[trial_id] = (candidate, key)
        return {
            "architecture": candidate.architecture,
            "candidate_id": candidate.id,
            "train_seed": self.seed * 100003 + candidate.id,
            "setup": self.setup,
        }

    def _told_reward(self, key: str, reward: float | None) -> float | None:
        """Reuse: the first training's reward; retrain: the mean of all of them."""
        history = self.rewards.get(key, [])
        if not history:
            return reward
        return history[0] if self.duplicates == "reuse" else sum(history) / len(history)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        entry = self.live.pop(trial_id, None)
        if entry is None:
            return
        candidate, key = entry
        reward = None if error or not result else self.reward_of(result)
        if reward is not None and math.isfinite(float(reward)):
            self.rewards.setdefault(key, []).append(float(reward))
        else:
            reward = None
        told = self._told_reward(key, reward)
        if candidate is not None:
            self.controller.tell(candidate, told)
        for duplicate in self.waiting.pop(key, []):
            self.controller.tell(duplicate, told)
            self.on_reuse(duplicate, key, told)

    def save(self, checkpoint_path: str) -> None:
        torch.save({"controller": self.controller.state_dict()}, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        state = torch.load(Path(checkpoint_path), weights_only=True)
        self.controller.load_state_dict(state["controller"])
