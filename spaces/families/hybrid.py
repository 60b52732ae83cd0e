"""The `hybrid` family: a 1-D convolutional front-end, then recurrent layers, then a head.

Architecture (defaults in brackets)::

    {"conv": [{"filters": int, "kernel": odd int [3], "activation": str ["relu"],
               "batchnorm": bool [false], "downsample": "none" | "stride" | "maxpool"
               ["none"]}, ...],
     "cell": as in `rnn` ["gru"], "bidirectional": bool [false], "dropout": float [0.0],
     "layers": [{"units": int >= 0, "activation": str ["tanh"]}, ...],
     "readout": "last" | "mean" | "attention" ["last"]}

The front-end is the `cnn1d` layer stack (its downsampling shortens the sequence the recurrent
layers read, as a convolutional front-end does for speech or music); the recurrent part is the
`rnn` family's. ``conv`` may be empty (then it is the `rnn` family).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ._common import check_keys, read_choice, read_float, read_mapping
from ._registry import InvalidArchitecture, register_family
from .cnn1d import _LAYER_KEYS as _CONV_KEYS
from .cnn1d import build_conv_stack
from .rnn import READOUTS, RNN_READOUTS, SequenceModel, ToSequence, build_recurrent_stack

__all__ = ["build_hybrid"]

_ARCH_KEYS = ("conv", "cell", "bidirectional", "dropout", "layers", "readout")


@register_family("hybrid")
def build_hybrid(
    arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int
) -> nn.Module:
    """Build a `hybrid` architecture for sequence inputs."""
    to_sequence = ToSequence(tuple(input_shape), "hybrid")
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    conv = arch.get("conv", [])
    if isinstance(conv, (str, bytes)) or not isinstance(conv, Sequence):
        raise InvalidArchitecture(f"conv: expected a list of layers, got {type(conv).__name__}")
    specs = []
    for i, layer in enumerate(conv):
        layer = read_mapping(layer, f"conv.{i}")
        check_keys(layer, _CONV_KEYS, f"conv.{i}")
        specs.append(layer)
    dropout = read_float(arch, "dropout", "dropout", default=0.0)
    front, channels, _ = build_conv_stack(
        specs, to_sequence.features, to_sequence.steps, dropout, key="conv"
    )
    readout = read_choice(arch, "readout", "readout", RNN_READOUTS, default="last")
    layers, features = build_recurrent_stack({"cell": "gru", **arch}, channels)
    return SequenceModel(
        to_sequence,
        layers,
        READOUTS[readout](features),
        nn.Linear(features, num_outputs),
        front=front,
    )
