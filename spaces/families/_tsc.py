"""Pieces the time-series classification families (`inception`, `resnet1d`) share: kernel
sets, "same" convolutions, and the model that pools the valid steps into a linear head.

Their blocks keep the sequence length and take ``(h, mask)``: h is (B, C, T) and mask is
(B, 1, T), True at the valid steps (None when every step is valid). A block returns its output
zeroed past the valid steps, so every convolution reads the padding as the zeros a shorter
series would be padded with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._registry import InvalidArchitecture
from .rnn import READOUTS, ToSequence, valid_mask

__all__ = ["GapClassifier", "SameConv1d", "mask_padding", "read_kernels"]


def read_kernels(mapping: Mapping[str, Any], key: str, default: str) -> tuple[int, ...]:
    """A kernel set written as kernel sizes joined by dashes, e.g. ``"10-20-40"``."""
    value = mapping.get(key, default)
    parts = value.split("-") if isinstance(value, str) else []
    if not parts or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise InvalidArchitecture(
            f"{key}: expected kernel sizes joined by dashes (e.g. {default!r}), got {value!r}"
        )
    return tuple(int(p) for p in parts)


class SameConv1d(nn.Conv1d):
    """A stride-1 convolution whose output has the input's length, even kernels included.

    Pads ``(kernel - 1) // 2`` zeros on the left and the rest on the right, as Keras's
    ``padding="same"`` does (the reference implementations use it), without the copy and
    warning torch's own ``padding="same"`` makes for even kernels.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool) -> None:
        super().__init__(in_channels, out_channels, kernel, bias=bias)
        self.pads = ((kernel - 1) // 2, kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, out, T)
        return super().forward(F.pad(x, self.pads) if self.pads != (0, 0) else x)


def mask_padding(h: torch.Tensor, mask: torch.Tensor | None, fill: float = 0.0) -> torch.Tensor:
    """``h`` with the steps past each series' length set to ``fill``."""
    return h if mask is None else h.masked_fill(~mask, fill)


class GapClassifier(nn.Module):
    """Sequence view -> length-keeping blocks -> mean over the valid steps -> linear head."""

    def __init__(
        self, to_sequence: ToSequence, blocks: Sequence[nn.Module], channels: int, outputs: int
    ) -> None:
        super().__init__()
        self.to_sequence = to_sequence
        self.blocks = nn.ModuleList(blocks)
        self.readout = READOUTS["mean"](channels)
        self.head = nn.Linear(channels, outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = self.to_sequence(x).transpose(1, 2)  # (B, C, T)
        mask = None
        if lengths is not None:
            lengths = lengths.to(h.device)
            mask = valid_mask(lengths, h.shape[-1]).unsqueeze(1)  # (B, 1, T)
            h = mask_padding(h, mask)
        for block in self.blocks:
            h = block(h, mask)
        return self.head(self.readout(h.transpose(1, 2), lengths))  # (B, outputs)
