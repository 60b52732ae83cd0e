"""The check every sequence family passes: padded series score as they would alone."""

from __future__ import annotations

import torch
from torch import nn


def assert_padding_changes_nothing(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor):
    """`x` padded past each of `lengths` scores as each series would alone (and as the
    full-length first one does without lengths); returns the padded batch's outputs."""
    with torch.no_grad():
        padded = model(x, lengths)
        assert torch.allclose(model(x)[0], padded[0], atol=1e-6)  # full length: unchanged
        for i, n in enumerate(lengths.tolist()):
            alone = model(x[i : i + 1, :n], lengths[i : i + 1])
            assert torch.allclose(padded[i], alone[0], atol=1e-5), (i, n)
    return padded
