"""Local search (White, Nolen and Savani 2021, "Exploring the Loss Landscape in Neural
Architecture Search"): the simple baseline that is hardest to beat on tabular NAS benchmarks.

From a uniformly random architecture, try its one-decision neighbours in random order and move
to the first one whose reward is higher; when every neighbour has been tried and none is
higher, the incumbent is a local optimum and the search restarts from a new random
architecture. A neighbour changes one decision to another of its choices; decisions that this
makes active (a larger count, a `when` that now holds) are drawn uniformly, as evolution's
mutation draws them.

Every reward told is remembered, so a neighbour already evaluated is compared without being
asked again: repeats cost no child. Children may be outstanding: while the incumbent's
neighbours are being evaluated, any told reward above the incumbent's becomes the new
incumbent (the first improvement to come back), and when no untried neighbour is left but some
are still training, the next ask explores a random architecture instead of waiting.

Failed children (reward None, NaN or +-inf) are remembered as tried and never become the
incumbent.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from controller.base import (
    Candidate,
    Controller,
    complete_actions,
    draw_unasked,
    finite_reward,
)
from controller.registry import register_controller


@dataclass
class LocalSearchOptions:
    """Options of the `local` controller."""

    retries: int = 50
    """Random draws per restart that avoid architectures already evaluated or outstanding."""

    def __post_init__(self) -> None:
        if int(self.retries) != self.retries or self.retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {self.retries}")
        self.retries = int(self.retries)


def one_decision_neighbours(space, actions: list[int], rng: np.random.Generator) -> list[list[int]]:
    """Every architecture that differs from `actions` in one decision's choice, in random order.

    Decisions that the change makes active are drawn uniformly from `rng`; those that stay
    active keep their choice.
    """
    slots = space.slots_of(actions)
    kept = {slot.index: a for slot, a in zip(slots, actions, strict=True)}
    moves = [(t, c) for t, slot in enumerate(slots) for c in range(len(slot.choices))]
    moves = [(t, c) for t, c in moves if c != actions[t]]
    walks, walk = [], space.walk()  # walks[t]: the decisions of actions[:t] taken
    for action in actions:
        walks.append(_copy_walk(walk))
        walk.take(action)
    neighbours = []
    steering = _steering(space)
    for i in rng.permutation(len(moves)):
        t, choice = moves[int(i)]
        if slots[t].name not in steering:  # nothing else changes: no walk needed
            neighbours.append([*actions[:t], choice, *actions[t + 1 :]])
            continue
        walk = _copy_walk(walks[t])
        walk.take(choice)
        neighbours.append(complete_actions(space, [*actions[:t], choice], kept, rng, walk))
    return neighbours


def _steering(space) -> set[str]:
    """Names of the decisions that switch others on or off (counts and `when` conditions)."""
    names = set()
    for slot in space.slots:
        if slot.block is not None:
            names.add(slot.block)
        names.update(condition.slot for condition in slot.conditions)
    return names


def _copy_walk(walk):
    """A walk that goes on from where `walk` is, independently of it."""
    other = copy.copy(walk)
    other.assigned = dict(walk.assigned)
    return other


@register_controller("local")
class LocalSearch(Controller):
    """First-improvement local search over one-decision neighbours with random restarts."""

    Options = LocalSearchOptions

    def __init__(self, space, seed: int = 0, **options) -> None:
        super().__init__(space, seed=seed, **options)
        self._rng = np.random.default_rng(self.seed)
        self._rewards: dict[tuple[int, ...], float] = {}  # every architecture told; -inf: failed
        self._incumbent: tuple[int, ...] | None = None
        self._queue: list[list[int]] = []  # the incumbent's untried neighbours, next last
        self._restarts = 0
        self._incumbents = 0
        # a warm start's: the rewards the source was told (the order neighbours are tried in)
        # and the first architecture to start from (its best)
        self._prior: dict[tuple[int, ...], float] = {}
        self._start: tuple[int, ...] | None = None

    def ask(self) -> Candidate:
        while self._queue:
            neighbour = tuple(self._queue.pop())
            if neighbour in self._rewards:
                if self._rewards[neighbour] > self._best_reward():
                    self._move(neighbour)
                continue
            if not self._outstanding(neighbour):
                return self._candidate(neighbour, role="neighbour", of=self._incumbents)
        if self._incumbent is not None and not self._neighbours_outstanding():
            self._incumbent = None  # a local optimum: every neighbour tried, none better
            self._restarts += 1
        if self._start is not None:
            start, self._start = self._start, None
            return self._candidate(start, role="start")
        return self._candidate(self._random_unseen(), role="random")

    def tell(self, candidate: Candidate, reward: float | None) -> None:
        candidate = self._settle(candidate)
        value = finite_reward(reward)
        value = -math.inf if value is None else value
        self._rewards[candidate.actions] = max(value, self._rewards.get(candidate.actions, value))
        if value > self._best_reward():
            self._move(candidate.actions)

    def _best_reward(self) -> float:
        return -math.inf if self._incumbent is None else self._rewards[self._incumbent]

    def _move(self, actions: tuple[int, ...]) -> None:
        """Make `actions` the incumbent and queue its neighbours."""
        self._incumbents += 1
        self._incumbent = actions
        self._queue = one_decision_neighbours(self.space, list(actions), self._rng)
        if self._prior:  # best-known first (the queue's end is asked first), unknown last
            self._queue.sort(key=lambda a: self._prior.get(tuple(a), -math.inf))

    def _neighbours_outstanding(self) -> bool:
        """Whether a neighbour of the incumbent is still training."""
        return any(
            c.info.get("role") == "neighbour" and c.info.get("of") == self._incumbents
            for c in self._pending.values()
        )

    def _outstanding(self, actions: tuple[int, ...]) -> bool:
        return any(c.actions == actions for c in self._pending.values())

    def _random_unseen(self) -> list[int]:
        seen = set(self._rewards) | {c.actions for c in self._pending.values()}
        return draw_unasked(
            lambda _: self.space.sample(self._rng), lambda a: a, seen, self.options.retries
        )

    def _state_dict(self) -> dict:
        return {
            "rng": self._rng.bit_generator.state,
            "rewards": [[list(a), r] for a, r in self._rewards.items()],
            "incumbent": None if self._incumbent is None else list(self._incumbent),
            "queue": [list(a) for a in self._queue],
            "restarts": self._restarts,
            "incumbents": self._incumbents,
            "prior": [[list(a), r] for a, r in self._prior.items()],
            "start": None if self._start is None else list(self._start),
        }

    def _load_state_dict(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._rewards = {tuple(int(x) for x in a): float(r) for a, r in state["rewards"]}
        incumbent = state["incumbent"]
        self._incumbent = None if incumbent is None else tuple(int(x) for x in incumbent)
        self._queue = [[int(x) for x in a] for a in state["queue"]]
        self._restarts = int(state["restarts"])
        self._incumbents = int(state["incumbents"])
        self._prior = {tuple(int(x) for x in a): float(r) for a, r in state.get("prior", [])}
        start = state.get("start")
        self._start = None if start is None else tuple(int(x) for x in start)

    def _warm_start(self, state: dict, shared) -> str:
        """The rewards the source was told (and those it had carried), as a prior: the first
        architecture is the source's best, and an incumbent's neighbours are tried best-known
        first. They are not this search's rewards: every architecture is evaluated here before
        it is compared. Decisions not shared are drawn at random."""
        source = state["algorithm"]
        for actions, reward in [*source.get("prior", []), *source["rewards"]]:
            if math.isfinite(reward):
                translated = shared.translate([int(a) for a in actions], self._rng)
                assert translated is not None  # every decision not shared is filled
                self._prior[tuple(translated)] = float(reward)
        if self._prior:
            self._start = max(self._prior, key=lambda a: self._prior[a])
        return f"the rewards of its {len(self._prior)} architectures, as the order to try them in"

    def stats(self) -> dict[str, float]:
        """Counters plus the incumbent's reward, incumbents so far and restarts."""
        best = self._best_reward()
        return {
            **super().stats(),
            "incumbent_reward": best if math.isfinite(best) else 0.0,
            "incumbents": float(self._incumbents),
            "restarts": float(self._restarts),
        }
