"""The `resnet1d` family: the residual network of Wang, Yan and Oates 2017 ("Time series
classification from scratch with deep neural networks: a strong baseline").

Architecture (defaults in brackets)::

    {"blocks": [{"filters": int}, ...],
     "kernels": str ["8-5-3"]}          # each block's convolutions, in order

A block is one "same" convolution per kernel, each followed by batch norm and (but the last)
ReLU, plus a shortcut: a 1x1 convolution and batch norm when the channels change, batch norm
alone when they do not (as in the reference code of Ismail Fawaz et al. 2019, whose
convolutions also keep their biases); the sum is ReLU'd. Then the mean over the valid steps and
a linear head. Inputs are read as the `rnn` family reads them ((T, F), (T,) or (C, H, W)); any
length builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._common import check_keys, read_int, read_layers, read_mapping
from ._registry import register_family
from ._tsc import GapClassifier, SameConv1d, mask_padding, read_kernels
from .rnn import ToSequence

__all__ = ["DEFAULT_RESNET", "ResidualBlock", "build_resnet1d"]

_BLOCK_KEYS = ("filters",)
_ARCH_KEYS = ("blocks", "kernels")

DEFAULT_RESNET: dict[str, Any] = {
    "blocks": [{"filters": 64}, {"filters": 128}, {"filters": 128}],
    "kernels": "8-5-3",
}
"""Wang et al.'s ResNet (member of the built-in ``resnet1d`` space)."""


class ResidualBlock(nn.Module):
    """Convolutions with BN (ReLU between them), a shortcut, and ReLU of the sum."""

    def __init__(self, in_channels: int, filters: int, kernels: Sequence[int]) -> None:
        super().__init__()
        convs, norms, channels = [], [], in_channels
        for k in kernels:
            convs.append(SameConv1d(channels, filters, k, bias=True))
            norms.append(nn.BatchNorm1d(filters))
            channels = filters
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.shortcut: nn.Module = nn.BatchNorm1d(filters)
        if in_channels != filters:
            self.shortcut = nn.Sequential(nn.Conv1d(in_channels, filters, 1), self.shortcut)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        h = x
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = norm(conv(h))
            if i < len(self.convs) - 1:
                h = mask_padding(torch.relu(h), mask)
        return mask_padding(torch.relu(h + self.shortcut(x)), mask)  # (B, filters, T)


@register_family("resnet1d")
def build_resnet1d(
    arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int
) -> nn.Module:
    """Build a `resnet1d` architecture for sequence inputs."""
    to_sequence = ToSequence(tuple(input_shape), "resnet1d")
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    kernels = read_kernels(arch, "kernels", "8-5-3")
    blocks, channels = [], to_sequence.features
    for i, block in enumerate(read_layers(arch, _BLOCK_KEYS, key="blocks")):
        filters = read_int(block, "filters", f"blocks.{i}.filters")
        blocks.append(ResidualBlock(channels, filters, kernels))
        channels = filters
    return GapClassifier(to_sequence, blocks, channels, num_outputs)
