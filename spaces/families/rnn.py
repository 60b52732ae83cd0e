"""The `rnn` family: stacked recurrent layers over a sequence, read out at the last step.

Architecture (defaults in brackets)::

    {"cell": "rnn" | "gru" | "lstm" ["lstm"],
     "layers": [{"units": int >= 0, "activation": "tanh" | "relu" | "sigmoid" | ... ["tanh"]},
                ...],
     "readout": "last" ["last"]}

Inputs are (T, F) sequences; an image (C, H, W) is read as H steps of C * W features and a
(T,) series as T steps of one feature. A layer with 0 units is skipped (it may omit
`activation`); each other layer is its own recurrent module (units differ), followed by its
activation applied to its whole output sequence.

Extension points: a new cell is an entry of `CELLS` (a factory of a batch-first module
returning ``(outputs, state)``); a layer of several directions reports its width in
`RecurrentLayer.out_features`; a new readout (mean, max pooling) is an entry of `READOUTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ._common import (
    check_keys,
    make_activation,
    read_choice,
    read_int,
    read_layers,
    read_mapping,
)
from ._registry import InvalidArchitecture, register_family

__all__ = ["CELLS", "READOUTS", "RecurrentLayer", "SequenceModel", "ToSequence", "build_rnn"]

CELLS: dict[str, Callable[[int, int], nn.Module]] = {
    "rnn": lambda inputs, units: nn.RNN(inputs, units, batch_first=True),
    "gru": lambda inputs, units: nn.GRU(inputs, units, batch_first=True),
    "lstm": lambda inputs, units: nn.LSTM(inputs, units, batch_first=True),
}
"""Recurrent modules by cell name: ``factory(input_size, units)``, batch first."""

READOUTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "last": lambda h: h[:, -1],
}
"""Ways to turn an output sequence (B, T, F) into features (B, F)."""

_LAYER_KEYS = ("units", "activation")
_ARCH_KEYS = ("cell", "layers", "readout")


class ToSequence(nn.Module):
    """Reshape a batch of examples to (B, T, F): (T, F) as is, (C, H, W) as H steps of C*W."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        if not 1 <= len(input_shape) <= 3:
            raise InvalidArchitecture(
                f"rnn needs a (T, F) sequence or (C, H, W) image input, got shape {input_shape}"
            )
        self.rank = len(input_shape)
        if self.rank == 1:
            self.steps, self.features = input_shape[0], 1
        elif self.rank == 2:
            self.steps, self.features = input_shape
        else:
            channels, self.steps, width = input_shape
            self.features = channels * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rank == 1:  # (B, T) -> (B, T, 1)
            return x.unsqueeze(-1)
        if self.rank == 3:  # (B, C, H, W) -> (B, H, C * W)
            return x.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1)
        return x


class RecurrentLayer(nn.Module):
    """One recurrent module followed by an activation on its output sequence."""

    def __init__(self, cell: str, in_features: int, units: int, activation: nn.Module) -> None:
        super().__init__()
        self.rnn = CELLS[cell](in_features, units)
        self.act = activation
        self.out_features = units

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F) -> (B, T, units)
        out, _ = self.rnn(x)
        return self.act(out)


class SequenceModel(nn.Module):
    """Sequence view -> recurrent layers -> readout -> linear head."""

    def __init__(
        self, to_sequence: ToSequence, layers: list[RecurrentLayer], readout: str, head: nn.Module
    ) -> None:
        super().__init__()
        self.to_sequence = to_sequence
        self.layers = nn.ModuleList(layers)
        self.readout = readout
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.to_sequence(x)  # (B, T, F)
        for layer in self.layers:
            h = layer(h)
        return self.head(READOUTS[self.readout](h))  # (B, F') -> (B, outputs)


@register_family("rnn")
def build_rnn(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build an `rnn` architecture for sequence (or image-as-sequence) inputs."""
    to_sequence = ToSequence(tuple(input_shape))
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    cell = read_choice(arch, "cell", "cell", tuple(CELLS), default="lstm")
    readout = read_choice(arch, "readout", "readout", tuple(READOUTS), default="last")
    features = to_sequence.features
    layers: list[RecurrentLayer] = []
    for i, spec in enumerate(read_layers(arch, _LAYER_KEYS)):
        where = f"layers.{i}"
        units = read_int(spec, "units", f"{where}.units", minimum=0)
        if units == 0:
            continue
        act = make_activation(spec.get("activation", "tanh"), f"{where}.activation")
        layers.append(RecurrentLayer(cell, features, units, act))
        features = layers[-1].out_features
    if not layers:
        raise InvalidArchitecture("every recurrent layer has 0 units")
    return SequenceModel(to_sequence, layers, readout, nn.Linear(features, num_outputs))
