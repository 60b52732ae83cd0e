"""Warm start: what two spaces share, so a controller can begin from what another one learned.

A controller warm-starts (`Controller.warm_start`) from the `state_dict()` of a controller of
the same kind that searched a *source* space. Each controller carries over its learned part
(policy weights, Q-values, population, history) through the decisions the two spaces share:

- a decision of the target space is shared when the source has a decision of the same name
  (``head``, ``layers`` for a count, ``layers.2.units``) with at least one equal choice value;
- a shared decision's choices correspond by value (``64`` is ``64`` wherever it is listed;
  ``True`` is not ``1``); choices only one side has are not carried.

The same space (or one with the same decisions under another name) shares every decision and
every choice: everything learned carries over unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SharedDecisions"]


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from the numbers 0 and 1 (as spaces compare)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _label(slot) -> str:
    """A decision as `Space.describe` lists it: ``layers.*.width`` for every layer's."""
    return slot.name if slot.layer is None else f"{slot.block}.*.{slot.key}"


@dataclass(frozen=True)
class SharedDecisions:
    """The decisions a source and a target space share, and their corresponding choices.

    Attributes:
        source: The space the warm start's state was learned on.
        target: The space of the controller that warm-starts.
        slots: Target slot index -> source slot index, for every shared decision.
        choices: Target slot index -> {target choice index -> source choice index}.
    """

    source: Any
    target: Any
    slots: dict[int, int]
    choices: dict[int, dict[int, int]]

    @classmethod
    def between(cls, source, target) -> SharedDecisions:
        """Match `target`'s decisions to `source`'s by name, their choices by value."""
        by_name = {slot.name: slot for slot in source.slots}
        slots: dict[int, int] = {}
        choices: dict[int, dict[int, int]] = {}
        for slot in target.slots:
            other = by_name.get(slot.name)
            if other is None:
                continue
            mapped = {
                i: j
                for i, value in enumerate(slot.choices)
                for j, theirs in enumerate(other.choices)
                if _same(value, theirs)
            }
            if mapped:
                slots[slot.index], choices[slot.index] = other.index, mapped
        return cls(source, target, slots, choices)

    @property
    def identical(self) -> bool:
        """Whether every decision and choice corresponds, one to one and in the same place."""
        s, t = self.source.slots, self.target.slots
        return len(s) == len(t) and all(
            self.slots.get(i) == i
            and len(s[i].choices) == len(t[i].choices) == len(self.choices[i])
            and all(a == b for a, b in self.choices[i].items())
            and s[i].conditions == t[i].conditions
            for i in range(len(t))
        )

    def pairs(self) -> Iterator[tuple[int, int, int, int]]:
        """(target slot, target choice, source slot, source choice) of every shared choice."""
        for t_slot, s_slot in self.slots.items():
            for t_choice, s_choice in self.choices[t_slot].items():
                yield t_slot, t_choice, s_slot, s_choice

    def by_source_name(self) -> dict[str, dict[int, int]]:
        """For each shared decision (by name, the same on both sides): source choice index ->
        target choice index."""
        return {
            self.target.slots[t_slot].name: {s: t for t, s in self.choices[t_slot].items()}
            for t_slot in self.slots
        }

    def translate(
        self, actions: Sequence[int], rng: np.random.Generator | None = None
    ) -> list[int] | None:
        """A source architecture (its actions) as a target architecture: each shared decision
        keeps its value; any other active decision takes a choice drawn uniformly from `rng`
        (None without `rng`: the architecture does not translate)."""
        values = _values(self.source, actions)
        assigned: dict[str, Any] = {}
        out: list[int] = []
        for slot in self.target.slots:
            if not slot.active(assigned):
                continue
            choice = None
            if slot.index in self.slots:
                name = self.source.slots[self.slots[slot.index]].name
                if name in values:
                    choice = next(
                        (i for i, value in enumerate(slot.choices) if _same(value, values[name])),
                        None,
                    )
            if choice is None:
                if rng is None:
                    return None
                choice = int(rng.integers(len(slot.choices)))
            out.append(choice)
            assigned[slot.name] = slot.choices[choice]
        return out

    def describe(self) -> str:
        """What corresponds, in a few words, counting decisions as `Space.describe` lists them
        (every layer's ``layers.*.width`` is one): ``all 5 decisions shared``, or ``4 of 5
        decisions shared (not: head; in part: cell)``; in part: some choices or layers only."""
        slots: dict[str, list[Any]] = {}
        for slot in self.target.slots:
            slots.setdefault(_label(slot), []).append(slot)
        if self.identical:
            return f"all {len(slots)} decisions shared"
        missing = [label for label, group in slots.items() if not self._shared(group)]
        partial = [
            label
            for label, group in slots.items()
            if self._shared(group)
            and any(
                s.index not in self.slots or len(self.choices[s.index]) < len(s.choices)
                for s in group
            )
        ]
        notes = [f"not: {_short(missing)}"] if missing else []
        notes += [f"in part: {_short(partial)}"] if partial else []
        text = f"{len(slots) - len(missing)} of {len(slots)} decisions shared"
        return text + (f" ({'; '.join(notes)})" if notes else "")

    def _shared(self, slots: list[Any]) -> bool:
        return any(s.index in self.slots for s in slots)


def _values(space, actions: Sequence[int]) -> Mapping[str, Any]:
    """Each active decision's value in an architecture of `space`, by decision name."""
    assigned: dict[str, Any] = {}
    it = iter(actions)
    for slot in space.slots:
        if slot.active(assigned):
            action = next(it, None)
            if action is None:
                break
            assigned[slot.name] = slot.choices[int(action)]
    return assigned


def _short(labels: list[str], most: int = 4) -> str:
    shown = ", ".join(labels[:most])
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")
