"""The declared search-space language and the `Space` it compiles to.

A space file is YAML::

    family: cnn                      # the model family that builds it
    description: ...                 # optional
    decisions:
      - name: cell                   # a named choice
        choices: [rnn, gru, lstm]
      - repeat: layers               # a depth decision, then per-layer decisions
        count: [1, 2, 3]
        decisions:
          - {name: units, choices: [0, 64, 128]}
          - name: activation
            choices: [tanh, relu]
            when: {units: {not: 0}}  # only when this layer's units are not 0
      - name: head
        choices: [none, 64]
        when: {cell: [gru, lstm]}    # value, list of values, {not: ...} or {in: ...}

`Space` unrolls every repeat block to its largest count into an ordered list of slots. An
architecture is the sequence of actions (choice indices) taken at the slots that are active:
a slot is active when its layer exists and its `when` holds for the earlier values. A space
has at most `MAX_CHOICES` choices per decision, `MAX_LAYERS` layers per block and `MAX_SLOTS`
slots in all; keys appear once per mapping.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from spaces.yaml_files import YamlFileError, read_yaml

__all__ = ["Slot", "Space", "SpaceError", "Walk"]

_TOP_KEYS = {"name", "family", "description", "decisions"}
_DECISION_KEYS = {"name", "choices", "when"}
_REPEAT_KEYS = {"repeat", "count", "decisions", "when"}

# Bounds that keep a space something a controller can learn over (and loading quick).
MAX_CHOICES = 1000
"""Choices of one decision."""
MAX_LAYERS = 500
"""Layers of one repeat block (its largest count)."""
MAX_SLOTS = 2000
"""Decisions of the whole space once every repeat block is unrolled to its largest count."""

_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxstring, _SHOW.maxother = 1, 10, 4, 60, 60


def _show(value: Any) -> str:
    """A short one-line repr of any value from a file (nested, recursive or huge ones too)."""
    return _SHOW.repr(value)


def _key(key: Any) -> str:
    """A mapping key as a key path spells it: plain text as it is, anything else as a repr."""
    if isinstance(key, str) and key.isprintable() and 0 < len(key) <= 60:
        return key
    return _show(key)


class SpaceError(ValueError):
    """A space file or an architecture does not fit the language.

    The message names the file, the key path and what was expected.
    """

    def __init__(self, source: str, path: str, message: str):
        self.source, self.path, self.reason = source, path, message
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")


@dataclass(frozen=True)
class _Condition:
    """`slot` must hold one of `values` (or none of them when `negate`)."""

    slot: str
    values: tuple[Any, ...]
    negate: bool = False

    def holds(self, assigned: Mapping[str, Any]) -> bool:
        if self.slot not in assigned:
            return False
        hit = any(_same(assigned[self.slot], v) for v in self.values)
        return hit != self.negate


@dataclass(frozen=True)
class Slot:
    """One decision of the unrolled space.

    Attributes:
        index: position in `Space.slots`.
        name: dotted path, e.g. ``"head"``, ``"layers"`` (a count) or ``"layers.2.filters"``.
        choices: the values the decision can take.
    """

    index: int
    name: str
    choices: tuple[Any, ...]
    block: str | None = None  # repeat block this slot belongs to (count slots included)
    layer: int | None = None  # layer index inside the block; None for top-level and counts
    key: str | None = None  # per-layer decision name
    conditions: tuple[_Condition, ...] = field(default=(), repr=False)

    @property
    def in_layer(self) -> tuple[str, int, str] | None:
        """``(block, layer, key)`` of a per-layer decision; None for the others."""
        if self.block is None or self.layer is None or self.key is None:
            return None
        return self.block, self.layer, self.key

    def active(self, assigned: Mapping[str, Any]) -> bool:
        # `in_layer` and all() spelled out: walks call this for every slot of every draw
        block, layer = self.block, self.layer
        if block is not None and layer is not None and self.key is not None:  # noqa: SIM102
            if assigned.get(block, 0) <= layer:
                return False
        for condition in self.conditions:  # noqa: SIM110 (a generator costs more here)
            if not condition.holds(assigned):
                return False
        return True


class Walk:
    """The decisions of a space taken one action at a time (see `Space.walk`)."""

    def __init__(self, space: Space):
        self.slots = space.slots
        self.assigned: dict[str, Any] = {}
        self._at = 0  # the first slot not yet passed

    def next_slot(self) -> Slot | None:
        """The next decision, or None when the actions taken make a whole architecture."""
        while self._at < len(self.slots) and not self.slots[self._at].active(self.assigned):
            self._at += 1
        return self.slots[self._at] if self._at < len(self.slots) else None

    def take(self, action: int) -> Slot:
        """Take `action` at the next decision; returns that decision."""
        slot = self.next_slot()
        if slot is None or not 0 <= action < len(slot.choices):
            raise ValueError(f"action {action} is illegal at {slot.name if slot else 'the end'}")
        self.assigned[slot.name] = slot.choices[action]
        self._at += 1
        return slot


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from the numbers 0 and 1."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


class Space:
    """An ordered set of decisions with masks, encoding and counting."""

    def __init__(
        self,
        name: str,
        family: str,
        slots: list[Slot],
        description: str = "",
        source: str = "<dict>",
        text: str = "",
    ):
        self.name, self.family, self.slots = name, family, slots
        self.description, self.source, self.text = description, source, text
        self.max_steps = len(slots)
        self.max_choices = max(len(s.choices) for s in slots)
        self._blocks = {s.block for s in slots if s.layer is None and s.block}

    # ----------------------------------------------------------------- building
    @classmethod
    def from_yaml(cls, path: str | Path) -> Space:
        """Parse a space file."""
        path = Path(path)
        source = str(path)
        try:
            data, text = read_yaml(path, "UTF-8 YAML")
        except YamlFileError as exc:
            raise SpaceError(source, "", str(exc)) from None
        return cls.from_dict(data, source=source, text=text, default_name=path.stem)

    @classmethod
    def from_dict(
        cls,
        data: Any,
        source: str = "<dict>",
        text: str | None = None,
        default_name: str = "space",
    ) -> Space:
        """Compile a space from the mapping a space file holds."""
        if not isinstance(data, Mapping):
            raise SpaceError(source, "", "expected a mapping with 'family' and 'decisions'")
        _no_unknown_keys(data, _TOP_KEYS, source, "")
        for key in ("family", "decisions"):
            if key not in data:
                raise SpaceError(source, key, "missing (expected at the top level)")
        family = data["family"]
        if not isinstance(family, str) or not family:
            raise SpaceError(source, "family", "expected a family name (string)")
        decisions = data["decisions"]
        if not isinstance(decisions, list) or not decisions:
            raise SpaceError(source, "decisions", "expected a non-empty list of decisions")
        slots = _Compiler(source).compile(decisions)
        if text is None:
            text = yaml.safe_dump(dict(data), sort_keys=False)
        name = data.get("name", default_name)
        if not isinstance(name, str) or not name:
            raise SpaceError(source, "name", "expected a non-empty string")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise SpaceError(source, "description", "expected a string")
        return cls(name, family, slots, description, source, text)

    # ------------------------------------------------------------------ walking
    def _walk(self, actions: Sequence[int]) -> tuple[dict[str, Any], Slot | None]:
        """Assign `actions` to the active slots; return the values and the next slot."""
        assigned: dict[str, Any] = {}
        it = iter(actions)
        position = 0
        for slot in self.slots:
            if not slot.active(assigned):
                continue
            action = next(it, None)
            if action is None:
                return assigned, slot
            action = int(action)
            if not 0 <= action < len(slot.choices):
                raise SpaceError(
                    self.source,
                    slot.name,
                    f"action {action} at step {position} is illegal "
                    f"(expected 0..{len(slot.choices) - 1})",
                )
            assigned[slot.name] = slot.choices[action]
            position += 1
        if next(it, None) is not None:
            raise SpaceError(
                self.source,
                "",
                f"{len(actions)} actions given, the architecture ends at {position}",
            )
        return assigned, None

    def next_slot(self, prefix: Sequence[int]) -> Slot | None:
        """The decision taken after `prefix`, or None when the prefix is a whole architecture."""
        return self._walk(prefix)[1]

    def walk(self) -> Walk:
        """A walk through the decisions that takes one action at a time (`next_slot` of each
        prefix of a sequence without walking it again from the start)."""
        return Walk(self)

    def slots_of(self, actions: Sequence[int]) -> list[Slot]:
        """The decision each action of `actions` takes, in one walk."""
        walk, slots = self.walk(), []
        for action in actions:
            slots.append(walk.take(action))
        return slots

    def slot_mask(self, slot: Slot) -> np.ndarray:
        """`action_mask` of a prefix whose next decision is `slot`."""
        mask = np.zeros(self.max_choices, dtype=bool)
        mask[: len(slot.choices)] = True
        return mask

    def is_complete(self, prefix: Sequence[int]) -> bool:
        """Whether `prefix` is a whole architecture."""
        return self.next_slot(prefix) is None

    def legal_actions(self, prefix: Sequence[int]) -> list[int]:
        """Legal action indices after `prefix` (empty when complete)."""
        slot = self.next_slot(prefix)
        return [] if slot is None else list(range(len(slot.choices)))

    def action_mask(self, prefix: Sequence[int]) -> np.ndarray:
        """Boolean mask of shape ``(max_choices,)`` over the padded action set."""
        mask = np.zeros(self.max_choices, dtype=bool)
        mask[self.legal_actions(prefix)] = True
        return mask

    # ------------------------------------------------------- encoding/decoding
    def decode(self, actions: Sequence[int]) -> dict[str, Any]:
        """Turn a whole action sequence into an architecture (a JSON-serialisable dict)."""
        assigned, pending = self._walk(actions)
        if pending is not None:
            raise SpaceError(
                self.source, pending.name, f"the sequence stops after {len(actions)} actions"
            )
        arch: dict[str, Any] = {}
        for slot in self.slots:
            if slot.name not in assigned:
                continue
            value = assigned[slot.name]
            place = slot.in_layer
            if place is not None:
                block, layer, key = place
                arch[block][layer][key] = value
            elif slot.block:
                arch[slot.block] = [{} for _ in range(value)]
            else:
                arch[slot.name] = value
        return arch

    def encode(self, arch: Mapping[str, Any]) -> list[int]:
        """Turn an architecture back into its action sequence."""
        if not isinstance(arch, Mapping):
            raise SpaceError(self.source, "", "an architecture must be a mapping")
        assigned: dict[str, Any] = {}
        actions: list[int] = []
        used: set[tuple] = set()
        for slot in self.slots:
            if not slot.active(assigned):
                continue
            value, where = self._lookup(arch, slot)
            used.add(where)
            index = next((i for i, c in enumerate(slot.choices) if _same(c, value)), None)
            if index is None:
                raise SpaceError(
                    self.source,
                    slot.name,
                    f"value {value!r} is not a choice (expected one of {list(slot.choices)})",
                )
            assigned[slot.name] = value
            actions.append(index)
        self._check_no_extra(arch, used)
        return actions

    def _lookup(self, arch: Mapping[str, Any], slot: Slot) -> tuple[Any, tuple]:
        place = slot.in_layer
        if place is None:
            top = slot.block or slot.name
            if top not in arch:
                raise SpaceError(self.source, slot.name, "missing from the architecture")
            if slot.block:
                layers = arch[top]
                if not isinstance(layers, list):
                    raise SpaceError(self.source, slot.name, "expected a list of layers")
                return len(layers), (top,)
            return arch[top], (top,)
        block, index, key = place
        layer = arch[block][index]
        if not isinstance(layer, Mapping) or key not in layer:
            raise SpaceError(self.source, slot.name, "missing from the architecture")
        return layer[key], place

    def _check_no_extra(self, arch: Mapping[str, Any], used: set[tuple]) -> None:
        for top, value in arch.items():
            if (top,) not in used:
                raise SpaceError(self.source, str(top), "not a decision of this architecture")
            if top in self._blocks:
                for i, layer in enumerate(value):
                    for key in layer:
                        if (top, i, key) not in used:
                            raise SpaceError(
                                self.source, f"{top}.{i}.{key}", "not a decision of this layer"
                            )

    def key(self, arch: Mapping[str, Any]) -> str:
        """Canonical key of an architecture: equal architectures share it."""
        canonical = self.decode(self.encode(arch))
        return json.dumps(canonical, sort_keys=True, separators=(",", ":"))

    # ------------------------------------------------------------------ counting
    def cardinality(self) -> int:
        """Exact number of distinct architectures."""
        # Slot by slot over the distinct values of the slots a later slot still looks at
        # (a `when` or a layer's depth), each state with its number of action prefixes; a
        # value is forgotten after its last use, so long spaces count in linear steps.
        last_use: dict[str, int] = {}
        for slot in self.slots:
            for c in slot.conditions:
                last_use[c.slot] = slot.index
            if slot.in_layer is not None:
                last_use[slot.in_layer[0]] = slot.index
        states: dict[tuple, tuple[dict[str, Any], int]] = {(): ({}, 1)}
        for slot in self.slots:
            following: dict[tuple, tuple[dict[str, Any], int]] = {}
            for assigned, n in states.values():
                if not slot.active(assigned):
                    branches = [(assigned, n)]
                elif slot.name not in last_use:
                    branches = [(assigned, n * len(slot.choices))]
                else:
                    branches = [({**assigned, slot.name: c}, n) for c in slot.choices]
                for values, m in branches:
                    values = {k: v for k, v in values.items() if last_use[k] > slot.index}
                    state = tuple(sorted((k, repr(v)) for k, v in values.items()))
                    following[state] = (values, following.get(state, (None, 0))[1] + m)
            states = following
        return sum(n for _, n in states.values())

    def sample(self, rng: np.random.Generator) -> list[int]:
        """A uniformly drawn action at every step."""
        # one pass over the slots (the same draws as walking the prefix again at every step)
        actions: list[int] = []
        assigned: dict[str, Any] = {}
        for slot in self.slots:
            if slot.active(assigned):
                actions.append(int(rng.integers(len(slot.choices))))
                assigned[slot.name] = slot.choices[actions[-1]]
        return actions

    def describe(self) -> str:
        """Human-readable listing of the decisions and the space's size."""
        lines = [f"space {self.name} (family {self.family}) from {self.source}"]
        if self.description:
            lines.append(f"  {self.description}")
        seen: set[str] = set()
        for slot in self.slots:
            label = slot.name if slot.layer is None else f"{slot.block}.*.{slot.key}"
            if label in seen:
                continue
            seen.add(label)
            when = " and ".join(
                f"{c.slot.split('.')[-1]} {'not in' if c.negate else 'in'} {list(c.values)}"
                for c in slot.conditions
            )
            kind = "count" if slot.layer is None and slot.block else "choice"
            suffix = f"  (when {when})" if when else ""
            lines.append(f"  {label:<24} {kind:<6} {list(slot.choices)}{suffix}")
        size = self.cardinality()
        exponent = f"~10^{math.log10(size):.1f}"
        # past a few thousand digits Python refuses to print an int; the exponent says enough
        counted = (
            f"{size:,} architectures ({exponent})" if size < 10**60 else f"{exponent} architectures"
        )
        lines.append(f"  {len(seen)} decisions, {counted}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Space(name={self.name!r}, family={self.family!r}, steps<={self.max_steps})"


def _no_unknown_keys(data: Mapping, allowed: set[str], source: str, path: str) -> None:
    for key in data:
        if key not in allowed:
            where = f"{path}.{_key(key)}" if path else _key(key)
            raise SpaceError(source, where, f"unknown key (expected one of {sorted(allowed)})")


class _Compiler:
    """Turns the `decisions` list into unrolled slots, checking as it goes."""

    def __init__(self, source: str):
        self.source = source
        self.slots: list[Slot] = []
        self.top_choices: dict[str, tuple] = {}  # top-level names (decisions and counts)

    def fail(self, path: str, message: str) -> SpaceError:
        return SpaceError(self.source, path, message)

    def compile(self, decisions: list) -> list[Slot]:
        for i, item in enumerate(decisions):
            path = f"decisions[{i}]"
            if not isinstance(item, Mapping):
                raise self.fail(path, "expected a mapping with 'name' and 'choices' or 'repeat'")
            if len(self.slots) >= MAX_SLOTS:
                raise self.fail(path, f"too many decisions (expected at most {MAX_SLOTS})")
            if "repeat" in item:
                self.repeat(item, path)
            else:
                name, choices = self.decision(item, path)
                self.claim(name, path)
                conditions = self.conditions(item.get("when"), f"{path}.when", {}, None, 0)
                self.add(Slot(len(self.slots), name, choices, conditions=conditions))
                self.top_choices[name] = choices
        return self.slots

    def add(self, slot: Slot) -> None:
        self.slots.append(slot)

    def claim(self, name: str, path: str, key: str = "name") -> None:
        if name in self.top_choices:
            raise self.fail(
                f"{path}.{key}", f"duplicate decision name {name!r} (expected a new name)"
            )

    def decision(self, item: Mapping, path: str) -> tuple[str, tuple]:
        _no_unknown_keys(item, _DECISION_KEYS, self.source, path)
        name = item.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise self.fail(f"{path}.name", "expected an identifier-like name (letters, _, digits)")
        choices = item.get("choices")
        if not isinstance(choices, list) or not choices:
            raise self.fail(f"{path}.choices", "expected a non-empty list of values")
        if len(choices) > MAX_CHOICES:
            raise self.fail(
                f"{path}.choices",
                f"{len(choices)} choices (expected at most {MAX_CHOICES})",
            )
        seen: set[tuple[bool, Any]] = set()
        for j, value in enumerate(choices):
            if not isinstance(value, (str, int, float, bool)) and value is not None:
                raise self.fail(f"{path}.choices[{j}]", "expected a string, number or boolean")
            if isinstance(value, float) and not math.isfinite(value):
                # NaN equals nothing (not even itself) and JSON has no infinities
                raise self.fail(f"{path}.choices[{j}]", f"{value!r} (expected a finite number)")
            if (isinstance(value, bool), value) in seen:
                raise self.fail(
                    f"{path}.choices[{j}]", f"duplicate choice {_show(value)} (expected distinct)"
                )
            seen.add((isinstance(value, bool), value))
        return name, tuple(choices)

    def repeat(self, item: Mapping, path: str) -> None:
        _no_unknown_keys(item, _REPEAT_KEYS, self.source, path)
        block = item["repeat"]
        if not isinstance(block, str) or not block.isidentifier():
            raise self.fail(f"{path}.repeat", "expected the block's name (an identifier)")
        self.claim(block, path, "repeat")
        count = item.get("count")
        if (
            not isinstance(count, list)
            or not count
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in count)
            or len(set(count)) != len(count)
        ):
            raise self.fail(f"{path}.count", "expected a list of distinct layer counts (ints >= 0)")
        if max(count) > MAX_LAYERS:
            raise self.fail(f"{path}.count", f"{max(count)} layers (expected at most {MAX_LAYERS})")
        inner = item.get("decisions")
        if not isinstance(inner, list) or not inner:
            raise self.fail(f"{path}.decisions", "expected a non-empty list of per-layer decisions")
        parsed: list[tuple[str, tuple, Any, str]] = []  # name, choices, when, path
        for j, sub in enumerate(inner):
            sub_path = f"{path}.decisions[{j}]"
            if not isinstance(sub, Mapping):
                raise self.fail(sub_path, "expected a mapping with 'name' and 'choices'")
            if "repeat" in sub:
                raise self.fail(
                    f"{sub_path}.repeat",
                    "repeat blocks cannot be nested (expected a decision with name and choices)",
                )
            name, choices = self.decision(sub, sub_path)
            if any(name == p[0] for p in parsed):
                raise self.fail(
                    f"{sub_path}.name",
                    f"duplicate decision name {name!r} in {block} (expected a new name)",
                )
            parsed.append((name, choices, sub.get("when"), sub_path))
        unrolled = len(self.slots) + 1 + len(parsed) * max(count)
        if unrolled > MAX_SLOTS:
            raise self.fail(
                f"{path}.count",
                f"{max(count)} layers of {len(parsed)} decisions unroll the space to "
                f"{unrolled} decisions (expected at most {MAX_SLOTS})",
            )
        when = self.conditions(item.get("when"), f"{path}.when", {}, None, 0)
        self.add(Slot(len(self.slots), block, tuple(count), block=block, conditions=when))
        self.top_choices[block] = tuple(count)
        for layer in range(max(count)):
            local: dict[str, tuple] = {}
            for name, choices, sub_when, sub_path in parsed:
                conditions = self.conditions(sub_when, f"{sub_path}.when", local, block, layer)
                full = f"{block}.{layer}.{name}"
                self.add(Slot(len(self.slots), full, choices, block, layer, name, conditions))
                local[name] = choices

    def conditions(
        self, when: Any, path: str, local: dict[str, tuple], block: str | None, layer: int
    ) -> tuple[_Condition, ...]:
        if when is None:
            return ()
        if not isinstance(when, Mapping) or not when:
            raise self.fail(path, "expected a mapping of earlier decision -> value(s)")
        out = []
        for ref, spec in when.items():
            where = f"{path}.{_key(ref)}"
            if ref in local:
                slot_name, choices = f"{block}.{layer}.{ref}", local[ref]
            elif ref in self.top_choices:
                slot_name, choices = ref, self.top_choices[ref]
            else:
                known = sorted(set(local) | set(self.top_choices))
                raise self.fail(
                    where, f"refers to no earlier decision (expected one of {_show(known)})"
                )
            negate = False
            if isinstance(spec, Mapping):
                if len(spec) != 1 or next(iter(spec)) not in ("not", "in"):
                    raise self.fail(where, "expected a value, a list, {not: ...} or {in: ...}")
                negate = "not" in spec
                spec = next(iter(spec.values()))
            values = tuple(spec) if isinstance(spec, list) else (spec,)
            if not values:
                raise self.fail(where, "an empty list (expected at least one value)")
            for value in values:
                if not any(_same(value, c) for c in choices):
                    raise self.fail(
                        where,
                        f"{_show(value)} is not a choice of {ref} "
                        f"(expected one of {_show(list(choices))})",
                    )
            out.append(_Condition(slot_name, values, negate))
        return tuple(out)
