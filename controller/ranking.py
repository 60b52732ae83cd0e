"""Ranked proposals: several candidates drawn, one proposed, chosen by a reward model.

A controller that can draw candidates (a policy's samples, epsilon-greedy walks) hands
`Ranker.propose` a way to draw one. Once `after` rewards are told, each proposal draws
`samples` distinct architectures not asked before, adds the one-decision neighbours of the
`neighbours` best told so far, and returns the one the reward model ranks first under one of its
members drawn at random (Thompson sampling; `controller.reward_model`) or, with `kappa`, by an
upper confidence bound over its members. The controller still
learns from every real reward; the model only chooses which of its draws is worth a child.

The options are fields of each controller's own options (`rank_samples`, `rank_neighbours`,
`rank_after`, checked by `check_rank_options`); `rank_samples` 0 or 1 turns ranking off and the
controller draws exactly as it would without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np
import torch

from controller.local import one_decision_neighbours
from controller.reward_model import RewardModel, encode_actions

__all__ = ["Ranker", "check_rank_options"]

Drawn = TypeVar("Drawn")
ENCODINGS_KEPT = 20_000
"""Encodings remembered before the cache starts again."""


def check_rank_options(options) -> None:
    """Validate `rank_samples`, `rank_neighbours` and `rank_after` of an options dataclass and
    store them as ints."""
    for name, low in (("rank_samples", 0), ("rank_neighbours", 0), ("rank_after", 2)):
        value = getattr(options, name)
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value}")
        setattr(options, name, int(value))


class Ranker:
    """Chooses each proposal among several draws with a reward model learned from the rewards.

    Args:
        space: The space searched.
        seed: Seeds the model's weights and bootstrap draws, and the neighbours' completions.
        samples: Distinct unasked draws per proposal (0 or 1: ranking off).
        neighbours: The one-decision neighbours of this many of the best told join the draws.
        after: Rewards told before proposals are ranked (until then: one draw).
        kappa: None: rank under one member drawn at random (Thompson sampling); a number: by
            the members' mean plus `kappa` times their standard deviation.
    """

    def __init__(
        self,
        space,
        seed: int,
        samples: int,
        neighbours: int,
        after: int,
        kappa: float | None = None,
    ) -> None:
        self.space, self.seed = space, int(seed)
        self.samples, self.neighbours, self.after = samples, neighbours, after
        self.kappa = kappa
        self.model = RewardModel(  # its own generator: the controller's draws stay as they were
            space.max_steps * space.max_choices,
            generator=torch.Generator().manual_seed(self.seed),
        )
        self._encodings: dict[tuple[int, ...], np.ndarray] = {}  # a cache: draws recur

    def encode(self, actions: Sequence[int]) -> np.ndarray:
        """`encode_actions`, remembered (the best's neighbours recur from one ask to the next)."""
        key = tuple(actions)
        x = self._encodings.get(key)
        if x is None:
            if len(self._encodings) >= ENCODINGS_KEPT:
                self._encodings.clear()
            x = self._encodings[key] = encode_actions(self.space, key)
        return x

    @property
    def on(self) -> bool:
        """Whether ranking is switched on at all."""
        return self.samples > 1

    @property
    def ready(self) -> bool:
        """Whether the next proposal is ranked (enough rewards told)."""
        return self.on and len(self.model) >= self.after

    def tell(self, actions: Sequence[int], reward: float) -> None:
        """One more reward for the model (nothing when ranking is off)."""
        if self.on:
            self.model.add(self.encode(actions), reward)

    def propose(
        self,
        draw: Callable[[int], Drawn],
        actions_of: Callable[[Drawn], Sequence[int]],
        complete: Callable[[list[int]], Drawn],
        asked: set[tuple[int, ...]],
        retries: int,
        history: Sequence[tuple[float, Sequence[int]]],
        generator: torch.Generator | np.random.Generator,
    ) -> Drawn:
        """The proposal among ``samples`` distinct unasked draws and the best's neighbours.

        Args:
            draw: ``draw(k)`` draws one candidate; ``k`` counts the draws past `samples` (0 for
                the first `samples`), for a controller that explores more on each retry.
            actions_of: The action sequence of a drawn candidate.
            complete: Makes a candidate of a neighbour's actions (called for the chosen one).
            asked: Every architecture asked before; the proposal joins it.
            retries: Draws allowed past `samples` while fewer are distinct and unasked.
            history: (reward, actions) of every reward told, in the order told.
            generator: Draws the model member that ranks (the controller's own generator).
        """
        drawn: dict[tuple[int, ...], Drawn | None] = {}  # None: a neighbour, made when chosen
        for retry in range(self.samples + retries):
            sample = draw(max(0, retry + 1 - self.samples))
            key = tuple(actions_of(sample))
            if key not in asked:
                drawn.setdefault(key, sample)
            if len(drawn) >= self.samples or (retry >= self.samples and drawn):
                break
        for actions in self.neighbours_of_best(history):
            if tuple(actions) not in asked:
                drawn.setdefault(tuple(actions), None)
        if not drawn:  # only what was asked before comes out: repeat the last draw
            drawn[key] = sample
        keys = list(drawn)
        encodings = [self.encode(key) for key in keys]
        key = keys[self.model.pick(encodings, generator, self.kappa)]
        chosen = drawn[key]
        asked.add(key)
        return complete(list(key)) if chosen is None else chosen

    def neighbours_of_best(
        self, history: Sequence[tuple[float, Sequence[int]]]
    ) -> Iterable[list[int]]:
        """The one-decision neighbours of the `neighbours` best distinct architectures told."""
        best: list[list[int]] = []
        for _, actions in sorted(history, key=lambda x: -x[0]):
            if len(best) >= self.neighbours:
                break
            if list(actions) not in best:
                best.append(list(actions))
        rng = np.random.default_rng(len(history) + 7919 * self.seed)
        return [n for actions in best for n in one_decision_neighbours(self.space, actions, rng)]

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
