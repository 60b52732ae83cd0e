"""The ask/tell protocol every controller follows.

A controller proposes architectures of a `spaces.Space` one at a time (`ask`) and learns
from their rewards (`tell`). Several candidates may be outstanding at once (children train
in parallel) and their rewards may come back in any order. A reward of `None`, NaN or
+-inf marks a failed child: the controller never crashes on it, and each controller says in
its docstring what it does with one (random search ignores it; REINFORCE gives it the worst
reward seen so far).

`state_dict()` returns plain data (tensors, numbers, strings, lists, dicts) that
`torch.save` / `torch.load(weights_only=True)` accept, RNG state included, so a restored
controller continues exactly where the saved one was, outstanding candidates included.
`warm_start(state, space)` instead begins a new controller from what a saved one learned, on
the same space or on one sharing decisions with it (`controller.warm`).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import numpy as np

from controller.warm import SharedDecisions


@dataclass(frozen=True)
class Candidate:
    """One proposed architecture.

    Attributes:
        id: Unique within its controller, in ask order from 0.
        actions: The space's action sequence (one index per active decision).
        architecture: `space.decode(actions)`, a JSON-serialisable dict.
        info: A few numbers about how it was proposed (e.g. its log-probability).
    """

    id: int
    actions: tuple[int, ...]
    architecture: dict
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "actions": list(self.actions),
            "architecture": self.architecture,
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Candidate:
        return cls(int(d["id"]), tuple(int(a) for a in d["actions"]), d["architecture"], d["info"])


@dataclass
class NoOptions:
    """A controller without options."""


def worst_for_failed(
    reward: float | None, worst: float | None
) -> tuple[float | None, float | None]:
    """Stand in the worst reward seen so far for a failed child.

    Returns:
        The reward to learn from (None: a failure before any finite reward, to be skipped) and
        the updated worst reward.
    """
    value = finite_reward(reward)
    if value is None:
        return worst, worst
    return value, value if worst is None else min(worst, value)


Drawn = TypeVar("Drawn")


def draw_unasked(
    draw: Callable[[int], Drawn],
    actions_of: Callable[[Drawn], Sequence[int]],
    asked: set[tuple[int, ...]],
    retries: int,
) -> Drawn:
    """``draw(0)``, then ``draw(1)``, ``draw(2)``, ... while its actions were asked before, at
    most `retries` more times (a repeat costs a child and teaches nothing); the actions kept
    join `asked`."""
    drawn = draw(0)
    for retry in range(1, retries + 1):
        if tuple(actions_of(drawn)) not in asked:
            break
        drawn = draw(retry)
    asked.add(tuple(actions_of(drawn)))
    return drawn


def complete_actions(
    space, prefix: Sequence[int], kept: dict[int, int], rng: np.random.Generator, walk=None
) -> list[int]:
    """`prefix` made a whole architecture: each later decision takes its choice in `kept` (by
    slot index) where it has one, else a uniformly drawn one (a decision that a changed count or
    `when` made active). `walk`: a `space.walk()` that has already taken `prefix` (it goes on)."""
    actions = list(prefix)
    if walk is None:
        walk = space.walk()
        for action in prefix:
            walk.take(action)
    while (slot := walk.next_slot()) is not None:
        action = kept[slot.index] if slot.index in kept else int(rng.integers(len(slot.choices)))
        actions.append(action)
        walk.take(action)
    return actions


def finite_reward(reward: float | None) -> float | None:
    """The reward as a float; None when it marks a failed child: None, NaN or +-inf."""
    if reward is None:
        return None
    value = float(reward)
    return value if math.isfinite(value) else None


class Controller(abc.ABC):
    """Base class of all controllers.

    Subclasses set `Options` to a dataclass whose fields are their options (each with a
    default and a docstring), implement `ask` and `tell` and, when they hold state beyond the
    candidate bookkeeping done here, `_state_dict` / `_load_state_dict` and `stats`.

    Args:
        space: The `spaces.Space` to search.
        seed: Seeds every random number the controller draws.
        **options: Fields of `Options`; an unknown name raises `TypeError`.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions

    def __init__(self, space, seed: int = 0, **options: Any) -> None:
        self.space = space
        self.seed = int(seed)
        known = [f.name for f in dataclasses.fields(self.Options)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(
                f"controller {self.name or type(self).__name__!r} got unknown option(s) "
                f"{unknown}; its options are {known}"
            )
        self.options = self.Options(**options)
        self._next_id = 0
        self._told = 0
        self._pending: dict[int, Candidate] = {}

    # -- the protocol -------------------------------------------------------------------------

    @abc.abstractmethod
    def ask(self) -> Candidate:
        """Propose the next architecture (use `_candidate` to build it)."""

    @abc.abstractmethod
    def tell(self, candidate: Candidate, reward: float | None) -> None:
        """Report the reward of an asked candidate, in any order; None, NaN or +-inf mean the
        child failed (use `_settle` to validate the candidate and `failed` to test the reward).

        Raises:
            ValueError: The candidate is not outstanding (never asked, or already told).
        """

    def state_dict(self) -> dict:
        """Everything needed to continue identically: options, counters, outstanding
        candidates, RNG state and whatever the subclass learned."""
        return {
            "controller": self.name,
            "seed": self.seed,
            "options": dataclasses.asdict(self.options),
            "next_id": self._next_id,
            "told": self._told,
            "pending": [c.to_dict() for c in self._pending.values()],
            "algorithm": self._state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()` output into a controller built for the same space."""
        if state["controller"] != self.name:
            raise ValueError(
                f"state belongs to controller {state['controller']!r}, not {self.name!r}"
            )
        self.seed = int(state["seed"])
        self.options = self.Options(**state["options"])
        self._next_id = int(state["next_id"])
        self._told = int(state["told"])
        self._pending = {int(d["id"]): Candidate.from_dict(d) for d in state["pending"]}
        self._load_state_dict(state["algorithm"])

    def warm_start(self, state: dict, space) -> str:
        """Begin from what another controller of this kind learned, before the first ask.

        `state` is its `state_dict()`, learned on `space`: this controller's own space, or one
        that shares decisions with it (by name and choice values, see `controller.warm`). The
        learned part carries over through the shared decisions (each controller's
        `_warm_start` says what: a policy, Q-values, a population, a history); this
        controller's seed, options, counters and random numbers stay its own, and what the
        other one had outstanding is dropped.

        Returns:
            What was carried, in one line (e.g. ``its policy network; all 7 decisions shared``).

        Raises:
            ValueError: Another controller's state, a controller that has already asked, two
                spaces that share no decision, a state that does not fit this controller's
                options (e.g. another network size), or a controller without a warm start.
        """
        if state["controller"] != self.name:
            raise ValueError(
                f"state belongs to controller {state['controller']!r}, not {self.name!r}"
            )
        if self._next_id:
            raise ValueError("a controller warm-starts before its first ask")
        shared = SharedDecisions.between(space, self.space)
        if not shared.slots:
            raise ValueError(
                f"space {space.name!r} shares no decision with space {self.space.name!r} "
                "(expected decisions of the same name with a choice in common)"
            )
        carried = self._warm_start(state, shared)
        if carried is None:
            raise ValueError(f"controller {self.name!r} has no warm start")
        return f"{carried}; {shared.describe()}"

    def stats(self) -> dict[str, float]:
        """Numbers worth logging now (subclasses add their own)."""
        return {
            "asked": float(self._next_id),
            "told": float(self._told),
            "pending": float(len(self._pending)),
        }

    # -- helpers for subclasses ---------------------------------------------------------------

    def _state_dict(self) -> dict:
        """The subclass's own state (plain data, see the module docstring)."""
        return {}

    def _load_state_dict(self, state: dict) -> None:  # noqa: B027 (optional hook)
        """Restore what `_state_dict` returned."""

    def _warm_start(self, state: dict, shared: SharedDecisions) -> str | None:
        """Take the learned part of `state` (a whole `state_dict()`, learned on
        ``shared.source``) through `shared`; return what was carried, in a few words. None:
        this controller cannot warm-start."""
        return None

    def _candidate(self, actions, **info: Any) -> Candidate:
        """Decode `actions` into a new outstanding candidate."""
        actions = tuple(int(a) for a in actions)
        candidate = Candidate(self._next_id, actions, self.space.decode(actions), info)
        self._pending[candidate.id] = candidate
        self._next_id += 1
        return candidate

    def _settle(self, candidate: Candidate | int) -> Candidate:
        """Mark an outstanding candidate as told and return it (the controller's own copy).

        Raises:
            ValueError: The candidate was never asked or was already told.
        """
        cid = candidate if isinstance(candidate, int) else candidate.id
        if cid not in self._pending:
            raise ValueError(f"candidate {cid} is not outstanding (never asked, or already told)")
        self._told += 1
        return self._pending.pop(cid)
