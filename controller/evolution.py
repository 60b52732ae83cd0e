"""Regularized (aging) evolution (Real et al. 2019, "Regularized Evolution for Image
Classifier Architecture Search").

The first `population` asks are uniformly random architectures. After that, each ask samples
`sample` members of the population uniformly (with replacement), takes the one with the best
reward as the parent and returns a mutation of it: one of the parent's decisions that has more
than one choice, picked uniformly, gets a different choice, picked uniformly. If that changes
a count or a `when` condition, the decisions that become active are drawn uniformly and those
that stay active keep the parent's choice (the ones that become inactive are dropped).
Each reward adds its architecture to the population; once the population holds more than
`population` members the oldest one dies, whatever its reward (aging: a lucky reward cannot
rule forever).

Children may be outstanding: the random phase is counted in asks, and a tournament samples
whatever the population holds when asked (a random architecture while it is still empty).

Failed children (reward None, NaN or +-inf) are skipped: they never join the population, so
they can neither be a parent nor push an older member out (counted in `skipped`).

Defaults: Real et al. used population 100 and sample 25 for 20,000 children. Searches here
train 50-500, so a population of a few tens (the random phase is at most a few tens of
children) and a sample of the same quarter of it as theirs (selection pressure without always
picking the single best). Measured: benchmarks/RESULTS.md#evolution.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from controller.base import Candidate, Controller, complete_actions, finite_reward
from controller.registry import register_controller


@dataclass
class EvolutionOptions:
    """Options of the `evolution` controller."""

    population: int = 20
    """Members kept alive; also the number of random architectures at the start (Real et al.:
    100, for 20,000 children)."""
    sample: int = 5
    """Members drawn per tournament; the best is the parent (Real et al.: 25)."""

    def __post_init__(self) -> None:
        for name in ("population", "sample"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
            setattr(self, name, int(value))


@register_controller("evolution")
class Evolution(Controller):
    """Aging evolution with single-decision mutations; see the module docstring."""

    Options = EvolutionOptions

    def __init__(self, space, seed: int = 0, **options) -> None:
        super().__init__(space, seed=seed, **options)
        self._rng = np.random.default_rng(self.seed)
        self._population: deque[tuple[list[int], float]] = deque()  # oldest first
        self._skipped = 0
        self._carried = 0  # members a warm start brought (the random phase is that much shorter)

    def ask(self) -> Candidate:
        if self._carried + self._next_id < self.options.population or not self._population:
            return self._candidate(self.space.sample(self._rng), parent=-1)
        drawn = self._rng.integers(len(self._population), size=self.options.sample)
        parent = max(drawn, key=lambda i: (self._population[i][1], -i))  # ties: the oldest
        return self._candidate(self._mutate(self._population[parent][0]), parent=int(parent))

    def _mutate(self, parent: list[int]) -> list[int]:
        """Change one decision of `parent` and re-fill what that makes active."""
        slots = [self.space.next_slot(parent[:t]) for t in range(len(parent))]
        mutable = [t for t, slot in enumerate(slots) if len(slot.choices) > 1]
        if not mutable:  # a space of one architecture
            return list(parent)
        t = mutable[int(self._rng.integers(len(mutable)))]
        n = len(slots[t].choices)
        new = (parent[t] + 1 + int(self._rng.integers(n - 1))) % n  # any choice but the old
        kept = {slot.index: a for slot, a in zip(slots, parent, strict=True)}
        kept[slots[t].index] = new
        return complete_actions(self.space, [*parent[:t], new], kept, self._rng)

    def tell(self, candidate: Candidate, reward: float | None) -> None:
        candidate = self._settle(candidate)
        value = finite_reward(reward)
        if value is None:
            self._skipped += 1
            return
        self._population.append((list(candidate.actions), value))
        if len(self._population) > self.options.population:
            self._population.popleft()  # the oldest dies

    def _state_dict(self) -> dict:
        return {
            "population": [[list(a), r] for a, r in self._population],
            "rng": self._rng.bit_generator.state,
            "skipped": self._skipped,
            "carried": self._carried,
        }

    def _load_state_dict(self, state: dict) -> None:
        self._population = deque(([int(x) for x in a], float(r)) for a, r in state["population"])
        self._rng.bit_generator.state = state["rng"]
        self._skipped = int(state["skipped"])
        self._carried = int(state.get("carried", 0))

    def _warm_start(self, state: dict, shared) -> str:
        """The population with its rewards, oldest first, each member's decisions that are not
        shared drawn at random; the random phase is shortened by as many members (a full
        population has none), and the members age out as this search's rewards come in."""
        members = state["algorithm"]["population"][-self.options.population :]
        for actions, reward in members:
            translated = shared.translate([int(a) for a in actions], self._rng)
            assert translated is not None  # every decision not shared is filled
            self._population.append((translated, float(reward)))
        self._carried = len(self._population)
        return f"its population of {self._carried}"

    def stats(self) -> dict[str, float]:
        """Counters plus the population's size, its best and mean reward, skipped failures."""
        rewards = [r for _, r in self._population]
        return {
            **super().stats(),
            "population": float(len(rewards)),
            "population_best": max(rewards, default=0.0),
            "population_mean": float(np.mean(rewards)) if rewards else 0.0,
            "skipped": float(self._skipped),
        }
