"""The `cnn` family: a stack of 2-D convolution layers and a small classifier head.

Architecture (defaults in brackets)::

    {"layers": [{"filters": int, "kernel": odd int [3], "activation": str ["relu"],
                 "batchnorm": bool [false], "residual": bool [false],
                 "downsample": "none" | "stride" | "maxpool" ["none"]}, ...],
     "head": "none" | int ["none"], "head_activation": str ["relu"]}

A layer is ``conv (stride 2 if "stride") -> batchnorm? -> (+ skip if residual) -> activation
-> maxpool?``. Convolutions are padded by kernel // 2, so only downsampling changes the spatial
size; downsampling a feature map that is already 1 pixel high or wide is invalid. A (T, F)
sequence is read as a one-channel T x F image (so a univariate series is T x 1 and cannot be
downsampled; the `cnn1d` and `tdnn` families suit sequences better).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ._common import (
    DOWNSAMPLES,
    check_keys,
    make_activation,
    read_bool,
    read_choice,
    read_int,
    read_layers,
    read_mapping,
)
from ._registry import InvalidArchitecture, register_family

__all__ = ["ConvLayer", "build_cnn"]

_LAYER_KEYS = ("filters", "kernel", "activation", "batchnorm", "residual", "downsample")
_ARCH_KEYS = ("layers", "head", "head_activation")


class ConvLayer(nn.Module):
    """One convolution layer with optional batchnorm, residual skip and downsampling."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel: int,
        activation: nn.Module,
        batchnorm: bool = False,
        residual: bool = False,
        downsample: str = "none",
    ) -> None:
        super().__init__()
        stride = 2 if downsample == "stride" else 1
        self.conv = nn.Conv2d(
            in_channels, filters, kernel, stride=stride, padding=kernel // 2, bias=not batchnorm
        )
        self.norm = nn.BatchNorm2d(filters) if batchnorm else nn.Identity()
        self.skip: nn.Module | None = None
        if residual:
            if in_channels == filters and stride == 1:
                self.skip = nn.Identity()
            else:  # 1x1 projection; its stride matches the conv's, so the shapes agree
                self.skip = nn.Sequential(
                    nn.Conv2d(in_channels, filters, 1, stride=stride, bias=not batchnorm),
                    nn.BatchNorm2d(filters) if batchnorm else nn.Identity(),
                )
        self.act = activation
        self.pool = nn.MaxPool2d(2) if downsample == "maxpool" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, F, H', W')
        h = self.norm(self.conv(x))
        if self.skip is not None:
            h = h + self.skip(x)
        return self.pool(self.act(h))


@register_family("cnn")
def build_cnn(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Build a `cnn` architecture for (C, H, W) inputs, or (T, F) read as (1, T, F)."""
    if len(input_shape) not in (2, 3):
        raise InvalidArchitecture(
            f"cnn needs a (C, H, W) or (T, F) input, got shape {tuple(input_shape)}; "
            "use the mlp family for flat data"
        )
    modules: list[nn.Module] = []
    if len(input_shape) == 2:
        input_shape = (1, *input_shape)
        modules.append(nn.Unflatten(1, (1, input_shape[1])))  # (B, T, F) -> (B, 1, T, F)
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    channels, height, width = input_shape
    for i, layer in enumerate(read_layers(arch, _LAYER_KEYS)):
        where = f"layers.{i}"
        filters = read_int(layer, "filters", f"{where}.filters")
        kernel = read_int(layer, "kernel", f"{where}.kernel", default=3)
        if kernel % 2 == 0:
            raise InvalidArchitecture(f"{where}.kernel: must be odd, got {kernel}")
        downsample = read_choice(layer, "downsample", f"{where}.downsample", DOWNSAMPLES, "none")
        if downsample != "none":
            if min(height, width) < 2:
                raise InvalidArchitecture(
                    f"{where}.downsample: {downsample!r} would shrink a {height}x{width} feature "
                    f"map below 1x1 (input {input_shape[1]}x{input_shape[2]}); "
                    "use fewer downsampling layers"
                )
            if downsample == "stride":  # conv with padding k // 2, stride 2
                height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
            else:
                height, width = height // 2, width // 2
        modules.append(
            ConvLayer(
                channels,
                filters,
                kernel,
                make_activation(layer.get("activation", "relu"), f"{where}.activation"),
                batchnorm=read_bool(layer, "batchnorm", f"{where}.batchnorm", default=False),
                residual=read_bool(layer, "residual", f"{where}.residual", default=False),
                downsample=downsample,
            )
        )
        channels = filters
    modules.append(nn.Flatten())
    features = channels * height * width
    head = arch.get("head", "none")
    if head is None or head == "none":
        modules.append(nn.Linear(features, num_outputs))
    elif isinstance(head, int) and not isinstance(head, bool) and head >= 1:
        act = make_activation(arch.get("head_activation", "relu"), "head_activation")
        modules += [nn.Linear(features, head), act, nn.Linear(head, num_outputs)]
    else:
        raise InvalidArchitecture(f'head: expected "none" or a positive integer, got {head!r}')
    return nn.Sequential(*modules)
