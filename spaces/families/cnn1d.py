"""The `cnn1d` family: 1-D convolutions over time, a pooled readout and a linear head.

Architecture (defaults in brackets)::

    {"layers": [{"filters": int, "kernel": odd int [3], "activation": str ["relu"],
                 "batchnorm": bool [false], "downsample": "none" | "stride" | "maxpool"
                 ["none"]}, ...],
     "dropout": float in [0, 1) [0.0],
     "readout": "mean" | "max" | "last" | "attention" ["mean"]}

Inputs are (T, F) sequences (F channels), or (T,) and (C, H, W) read as the `rnn` family reads
them. A layer is ``conv (padded by kernel // 2, stride 2 if "stride") -> batchnorm? ->
activation -> maxpool? -> dropout?``; downsampling a sequence already 1 step long is invalid.
Given the true lengths of zero-padded series (``model(x, lengths)``), every layer's output is
zeroed past each series' valid steps (whose count shrinks with each downsampling layer) and the
readout pools over valid steps only, so a padded series scores as it would alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._common import (
    DOWNSAMPLES,
    check_keys,
    make_activation,
    read_bool,
    read_choice,
    read_float,
    read_int,
    read_layers,
    read_mapping,
)
from ._registry import InvalidArchitecture, register_family
from .rnn import READOUTS, LengthAware, ToSequence, valid_mask

__all__ = ["Conv1dLayer", "TimeConv", "build_cnn1d", "build_conv_stack"]

CONV_READOUTS = ("mean", "max", "last", "attention")
_LAYER_KEYS = ("filters", "kernel", "activation", "batchnorm", "downsample")
_ARCH_KEYS = ("layers", "dropout", "readout")


class Conv1dLayer(nn.Module):
    """One 1-D convolution layer over (B, C, T) with optional batchnorm and downsampling."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel: int,
        activation: nn.Module,
        batchnorm: bool = False,
        downsample: str = "none",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        stride = 2 if downsample == "stride" else 1
        self.conv = nn.Conv1d(
            in_channels, filters, kernel, stride=stride, padding=kernel // 2, bias=not batchnorm
        )
        self.norm = nn.BatchNorm1d(filters) if batchnorm else nn.Identity()
        self.act = activation
        self.pool = nn.MaxPool1d(2) if downsample == "maxpool" else nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, F, T')
        return self.drop(self.pool(self.act(self.norm(self.conv(x)))))

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid steps of the output for inputs of ``lengths`` valid steps (at least 1)."""
        if self.conv.stride[0] == 2:
            lengths = (lengths - 1) // 2 + 1
        if isinstance(self.pool, nn.MaxPool1d):
            lengths = lengths // 2
        return lengths.clamp(min=1)


class TimeConv(nn.Module):
    """Apply channel-first layers to a (B, T, F) sequence; returns (B, T', F')."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            return self.layers(x.transpose(1, 2)).transpose(1, 2)
        h = x.transpose(1, 2)
        for layer in self.layers:
            h = layer(h)
            if isinstance(layer, LengthAware):
                lengths = layer.out_lengths(lengths)
            # zero the padding again, so the next layer reads it as a shorter series would
            h = h * valid_mask(lengths.to(h.device), h.shape[-1]).unsqueeze(1).to(h.dtype)
        return h.transpose(1, 2)

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output steps of series with ``lengths`` valid input steps."""
        for layer in self.layers:
            if isinstance(layer, LengthAware):
                lengths = layer.out_lengths(lengths)
        return lengths


def build_conv_stack(
    layers: Sequence[Mapping[str, Any]],
    channels: int,
    steps: int,
    dropout: float,
    key: str = "layers",
) -> tuple[TimeConv, int, int]:
    """The checked conv layers; returns the module, output channels and output steps."""
    modules: list[nn.Module] = []
    for i, layer in enumerate(layers):
        where = f"{key}.{i}"
        filters = read_int(layer, "filters", f"{where}.filters")
        kernel = read_int(layer, "kernel", f"{where}.kernel", default=3)
        if kernel % 2 == 0:
            raise InvalidArchitecture(f"{where}.kernel: must be odd, got {kernel}")
        downsample = read_choice(layer, "downsample", f"{where}.downsample", DOWNSAMPLES, "none")
        if downsample != "none":
            if steps < 2:
                raise InvalidArchitecture(
                    f"{where}.downsample: {downsample!r} would shrink a sequence of {steps} "
                    "step(s) below 1; use fewer downsampling layers"
                )
            steps = (steps - 1) // 2 + 1 if downsample == "stride" else steps // 2
        modules.append(
            Conv1dLayer(
                channels,
                filters,
                kernel,
                make_activation(layer.get("activation", "relu"), f"{where}.activation"),
                batchnorm=read_bool(layer, "batchnorm", f"{where}.batchnorm", default=False),
                downsample=downsample,
                dropout=dropout,
            )
        )
        channels = filters
    return TimeConv(modules), channels, steps


class ConvSequenceModel(nn.Module):
    """Sequence view -> time convolutions -> readout -> linear head."""

    def __init__(self, to_sequence: nn.Module, body: TimeConv, readout: nn.Module, head: nn.Module):
        super().__init__()
        self.to_sequence, self.body, self.readout, self.head = to_sequence, body, readout, head

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(self.to_sequence(x), lengths)
        if lengths is not None:
            lengths = self.body.out_lengths(lengths)
        return self.head(self.readout(h, lengths))  # (B, outputs)


@register_family("cnn1d")
def build_cnn1d(
    arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int
) -> nn.Module:
    """Build a `cnn1d` architecture for sequence inputs."""
    to_sequence = ToSequence(tuple(input_shape), "cnn1d")
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    dropout = read_float(arch, "dropout", "dropout", default=0.0)
    readout = read_choice(arch, "readout", "readout", CONV_READOUTS, default="mean")
    body, channels, _ = build_conv_stack(
        read_layers(arch, _LAYER_KEYS), to_sequence.features, to_sequence.steps, dropout
    )
    return ConvSequenceModel(
        to_sequence, body, READOUTS[readout](channels), nn.Linear(channels, num_outputs)
    )
