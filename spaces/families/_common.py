"""Pieces shared by the families: the activation tables, shared choices and checked reads of
arch fields.

Every reader raises `InvalidArchitecture` naming the field by its dotted path
(e.g. ``layers.2.filters``, layers counted from 0), so a bad architecture is reported
in one line before any training.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from torch import nn

from ._registry import InvalidArchitecture

__all__ = [
    "ACTIVATIONS",
    "DOWNSAMPLES",
    "GAN_ACTIVATIONS",
    "REQUIRED",
    "check_keys",
    "make_activation",
    "read_bool",
    "read_choice",
    "read_float",
    "read_int",
    "read_layers",
    "read_mapping",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": partial(nn.LeakyReLU, 0.01),
}
"""Activation modules by name, shared by every family but the GAN's."""
GAN_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    **ACTIVATIONS,
    "leaky_relu": partial(nn.LeakyReLU, 0.2),
}
"""The GAN family's: the same names, ``leaky_relu`` with slope 0.2 (the DCGAN convention)."""

DOWNSAMPLES = ("none", "stride", "maxpool")
"""How a convolution layer may shrink its input (``cnn`` and ``cnn1d`` families)."""

REQUIRED: Any = object()
"""Default marking a field that must be present."""


def make_activation(
    name: Any,
    where: str = "activation",
    table: Mapping[str, Callable[[], nn.Module]] = ACTIVATIONS,
) -> nn.Module:
    """A fresh activation module for `name` from `table`; an unknown name raises
    InvalidArchitecture."""
    if not isinstance(name, str) or name not in table:
        known = ", ".join(table)
        raise InvalidArchitecture(f"{where}: unknown activation {name!r}; known: {known}")
    return table[name]()


def read_mapping(value: Any, where: str) -> Mapping[str, Any]:
    """`value` if it is a mapping, else raise."""
    if not isinstance(value, Mapping):
        raise InvalidArchitecture(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def check_keys(mapping: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    """Raise on any key of `mapping` not in `allowed` (a typo must not pass silently)."""
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise InvalidArchitecture(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )


def read_layers(
    arch: Mapping[str, Any], allowed: Sequence[str], key: str = "layers"
) -> list[Mapping[str, Any]]:
    """The non-empty list of layer mappings under `arch[key]`, each checked against `allowed`."""
    layers = _get(arch, key, key, REQUIRED)
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise InvalidArchitecture(f"{key}: expected a list of layers, got {type(layers).__name__}")
    if not layers:
        raise InvalidArchitecture(f"{key}: the architecture has no layers")
    out = []
    for i, layer in enumerate(layers):
        layer = read_mapping(layer, f"{key}.{i}")
        check_keys(layer, allowed, f"{key}.{i}")
        out.append(layer)
    return out


def read_int(
    mapping: Mapping[str, Any], key: str, where: str, default: Any = REQUIRED, minimum: int = 1
) -> int:
    """An integer field of at least `minimum`."""
    value = _get(mapping, key, where, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArchitecture(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def read_float(
    mapping: Mapping[str, Any],
    key: str,
    where: str,
    default: Any = REQUIRED,
    low: float = 0.0,
    high: float = 1.0,
) -> float:
    """A number in the half-open interval [low, high)."""
    value = _get(mapping, key, where, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
        raise InvalidArchitecture(f"{where}: expected a number in [{low}, {high}), got {value!r}")
    return float(value)


def read_bool(mapping: Mapping[str, Any], key: str, where: str, default: Any = REQUIRED) -> bool:
    """A true/false field."""
    value = _get(mapping, key, where, default)
    if not isinstance(value, bool):
        raise InvalidArchitecture(f"{where}: expected true or false, got {value!r}")
    return value


def read_choice(
    mapping: Mapping[str, Any],
    key: str,
    where: str,
    choices: Sequence[str],
    default: Any = REQUIRED,
) -> str:
    """A string field that must be one of `choices`."""
    value = _get(mapping, key, where, default)
    if not isinstance(value, str) or value not in choices:
        raise InvalidArchitecture(f"{where}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _get(mapping: Mapping[str, Any], key: str, where: str, default: Any) -> Any:
    if key in mapping:
        return mapping[key]
    if default is REQUIRED:
        raise InvalidArchitecture(f"{where}: missing")
    return default
