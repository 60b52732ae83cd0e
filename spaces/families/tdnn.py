"""The `tdnn` family: a time-delay network of dilated causal 1-D convolutions.

Architecture (defaults in brackets)::

    {"layers": [{"channels": int, "kernel": int >= 1 [3], "activation": str ["relu"]}, ...],
     "dilation": "double" | "constant" | "triple" ["double"],
     "residual": bool [false],
     "dropout": float in [0, 1) [0.0],
     "readout": "last" | "mean" | "max" | "attention" ["last"]}

Layer i (from 0) convolves with dilation 1 (``constant``), 2**i (``double``) or 3**i
(``triple``), padded on the left only, so step t sees steps <= t (causal) and the length stays
T. With ``residual`` each layer adds its input (a 1x1 projection when the channels differ). The
``last`` readout takes the final step, which sees the whole receptive field (with the true
lengths of padded series, ``model(x, lengths)``, each series' last valid step; causal layers
never mix the padding into valid steps). Inputs are read as the `rnn` family reads them ((T, F),
(T,) or (C, H, W)).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    check_keys,
    make_activation,
    read_bool,
    read_choice,
    read_float,
    read_int,
    read_layers,
    read_mapping,
)
from ._registry import register_family
from .cnn1d import ConvSequenceModel, TimeConv
from .rnn import READOUTS, ToSequence

__all__ = ["DILATIONS", "CausalConvLayer", "build_tdnn"]

DILATIONS = {"constant": 1, "double": 2, "triple": 3}
"""Dilation schedules: layer i uses ``base ** i``."""
TDNN_READOUTS = ("last", "mean", "max", "attention")
_LAYER_KEYS = ("channels", "kernel", "activation")
_ARCH_KEYS = ("layers", "dilation", "residual", "dropout", "readout")


class CausalConvLayer(nn.Module):
    """Dilated causal convolution over (B, C, T) -> activation (+ skip) -> dropout."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel: int,
        dilation: int,
        activation: nn.Module,
        residual: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.left = (kernel - 1) * dilation
        self.conv = nn.Conv1d(in_channels, channels, kernel, dilation=dilation)
        self.act = activation
        self.skip: nn.Module | None = None
        if residual:
            self.skip = (
                nn.Identity() if in_channels == channels else nn.Conv1d(in_channels, channels, 1)
            )
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, channels, T)
        h = self.act(self.conv(F.pad(x, (self.left, 0))))
        if self.skip is not None:
            h = h + self.skip(x)
        return self.drop(h)


@register_family("tdnn")
def build_tdnn(
    arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int
) -> nn.Module:
    """Build a `tdnn` architecture for sequence inputs."""
    to_sequence = ToSequence(tuple(input_shape), "tdnn")
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    base = DILATIONS[read_choice(arch, "dilation", "dilation", tuple(DILATIONS), "double")]
    residual = read_bool(arch, "residual", "residual", default=False)
    dropout = read_float(arch, "dropout", "dropout", default=0.0)
    readout = read_choice(arch, "readout", "readout", TDNN_READOUTS, default="last")
    channels = to_sequence.features
    modules: list[nn.Module] = []
    for i, layer in enumerate(read_layers(arch, _LAYER_KEYS)):
        where = f"layers.{i}"
        width = read_int(layer, "channels", f"{where}.channels")
        kernel = read_int(layer, "kernel", f"{where}.kernel", default=3)
        act = make_activation(layer.get("activation", "relu"), f"{where}.activation")
        modules.append(CausalConvLayer(channels, width, kernel, base**i, act, residual, dropout))
        channels = width
    return ConvSequenceModel(
        to_sequence,
        TimeConv(modules),
        READOUTS[readout](channels),
        nn.Linear(channels, num_outputs),
    )
