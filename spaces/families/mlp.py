"""The `mlp` family: flatten the input, hidden linear layers, a linear head.

Architecture (defaults in brackets)::

    {"layers": [{"width": int, "activation": str ["relu"], "dropout": float in [0, 1) [0.0]},
                ...]}

A layer is ``linear -> activation -> dropout`` (no dropout module when it is 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from ._common import check_keys, make_activation, read_float, read_int, read_layers, read_mapping
from ._registry import register_family

__all__ = ["build_mlp"]

_LAYER_KEYS = ("width", "activation", "dropout")


@register_family("mlp")
def build_mlp(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build an `mlp` architecture for inputs of any shape (flattened)."""
    arch = read_mapping(arch, "architecture")
    check_keys(arch, ("layers",), "architecture")
    features = math.prod(input_shape)
    modules: list[nn.Module] = [nn.Flatten()]
    for i, layer in enumerate(read_layers(arch, _LAYER_KEYS)):
        where = f"layers.{i}"
        width = read_int(layer, "width", f"{where}.width")
        modules += [
            nn.Linear(features, width),
            make_activation(layer.get("activation", "relu"), f"{where}.activation"),
        ]
        dropout = read_float(layer, "dropout", f"{where}.dropout", default=0.0)
        if dropout > 0:
            modules.append(nn.Dropout(dropout))
        features = width
    modules.append(nn.Linear(features, num_outputs))
    return nn.Sequential(*modules)
