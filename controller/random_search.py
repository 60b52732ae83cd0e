"""Random search: a uniformly random legal action at every decision.

Each architecture is drawn independently of every reward, so `tell` only does bookkeeping
(failed children included). Note that "uniform at every step" is not uniform over
architectures: a space whose depth is a decision gives each depth the same probability.
"""

from __future__ import annotations

import numpy as np

from controller.base import Candidate, Controller
from controller.registry import register_controller


@register_controller("random")
class RandomSearch(Controller):
    """Uniform over the legal actions at each step, from its own `np.random.Generator`."""

    def __init__(self, space, seed: int = 0, **options) -> None:
        super().__init__(space, seed=seed, **options)
        self._rng = np.random.default_rng(self.seed)

    def ask(self) -> Candidate:
        return self._candidate(self.space.sample(self._rng))

    def tell(self, candidate: Candidate, reward: float | None) -> None:
        self._settle(candidate)

    def _warm_start(self, state: dict, shared) -> str:
        """Nothing: random search learns nothing (a warm start proposes what a cold one does)."""
        return "nothing (random search learns nothing)"

    def _state_dict(self) -> dict:
        return {"rng": self._rng.bit_generator.state}

    def _load_state_dict(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
