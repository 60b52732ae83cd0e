"""The `inception` family: InceptionTime's network (Ismail Fawaz et al. 2020, "InceptionTime:
Finding AlexNet for time series classification").

Architecture (defaults in brackets)::

    {"depth": int [6],                  # inception modules
     "kernels": str ["10-20-40"],       # the parallel convolutions' kernel sizes
     "filters": int [32],               # channels of each branch
     "bottleneck": int >= 0 [32],       # channels of the 1x1 bottleneck; 0: none
     "residual_every": int >= 0 [3]}    # a shortcut around every that many modules; 0: none

A module is ``bottleneck (1x1 conv, skipped on a 1-channel input) -> one "same" convolution per
kernel``, beside ``max-pool(3) -> 1x1 conv`` of the module's input; the branches are
concatenated (``filters * (len(kernels) + 1)`` channels), batch-normalised and ReLU'd. Every
``residual_every`` modules, ``ReLU(modules(x) + BN(conv1x1(x)))``. Then the mean over the
valid steps and a linear head. Convolutions have no bias, as in the authors' code (batch norm
follows each). The decisions are network-wide, as in the paper's own study of depth, filters,
kernel sizes, bottleneck and residuals. Inputs are read as the `rnn` family reads them ((T, F),
(T,) or (C, H, W)); any length builds (kernels longer than the series read mostly padding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._common import check_keys, read_int, read_mapping
from ._registry import register_family
from ._tsc import GapClassifier, SameConv1d, mask_padding, read_kernels
from .rnn import ToSequence

__all__ = ["DEFAULT_INCEPTION_TIME", "InceptionBlock", "InceptionModule", "build_inception"]

_ARCH_KEYS = ("depth", "kernels", "filters", "bottleneck", "residual_every")

DEFAULT_INCEPTION_TIME: dict[str, Any] = {
    "depth": 6,
    "kernels": "10-20-40",
    "filters": 32,
    "bottleneck": 32,
    "residual_every": 3,
}
"""InceptionTime's network, one of its ensemble of five (member of the built-in ``inception``
space)."""


class InceptionModule(nn.Module):
    """Bottleneck, parallel convolutions and a max-pool branch, concatenated; BN and ReLU."""

    def __init__(
        self, in_channels: int, kernels: Sequence[int], filters: int, bottleneck: int
    ) -> None:
        super().__init__()
        self.bottleneck: nn.Module = nn.Identity()
        width = in_channels
        if bottleneck and in_channels > 1:
            self.bottleneck, width = nn.Conv1d(in_channels, bottleneck, 1, bias=False), bottleneck
        self.convs = nn.ModuleList(SameConv1d(width, filters, k, bias=False) for k in kernels)
        self.pool = nn.MaxPool1d(3, stride=1, padding=1)
        self.pool_conv = nn.Conv1d(in_channels, filters, 1, bias=False)
        self.out_channels = filters * (len(kernels) + 1)
        self.norm = nn.BatchNorm1d(self.out_channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = mask_padding(self.bottleneck(x), mask)
        # the pool reads padding as -inf (as it pads a series' ends), then gives zeros there
        pooled = self.pool(mask_padding(x, mask, float("-inf")))
        branches = [conv(h) for conv in self.convs]
        branches.append(self.pool_conv(mask_padding(pooled, mask)))
        out = torch.relu(self.norm(torch.cat(branches, dim=1)))  # (B, out_channels, T)
        return mask_padding(out, mask)


class InceptionBlock(nn.Module):
    """Inception modules in a row, with a 1x1 conv + BN shortcut around them if given one."""

    def __init__(self, modules: Sequence[InceptionModule], in_channels: int, shortcut: bool):
        super().__init__()
        self.layers = nn.ModuleList(modules)
        channels = modules[-1].out_channels
        self.shortcut: nn.Module | None = None
        if shortcut:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, channels, 1, bias=False), nn.BatchNorm1d(channels)
            )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = x
        for module in self.layers:
            h = module(h, mask)
        if self.shortcut is None:
            return h
        return mask_padding(torch.relu(h + self.shortcut(x)), mask)


@register_family("inception")
def build_inception(
    arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int
) -> nn.Module:
    """Build an `inception` architecture for sequence inputs."""
    to_sequence = ToSequence(tuple(input_shape), "inception")
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    depth = read_int(arch, "depth", "depth", default=6)
    kernels = read_kernels(arch, "kernels", "10-20-40")
    filters = read_int(arch, "filters", "filters", default=32)
    bottleneck = read_int(arch, "bottleneck", "bottleneck", default=32, minimum=0)
    every = read_int(arch, "residual_every", "residual_every", default=3, minimum=0)
    blocks, channels = [], to_sequence.features
    # modules grouped by the shortcuts: full groups get one, a shorter last group none
    for start in range(0, depth, every or depth):
        count = min(every or depth, depth - start)
        modules, block_in = [], channels
        for _ in range(count):
            modules.append(InceptionModule(channels, kernels, filters, bottleneck))
            channels = modules[-1].out_channels
        blocks.append(InceptionBlock(modules, block_in, shortcut=count == every))
    return GapClassifier(to_sequence, blocks, channels, num_outputs)
