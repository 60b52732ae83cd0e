"""The `gan` family: a generator and a discriminator searched as two parts of one architecture.

Architecture (defaults in brackets)::

    {"loss": "non_saturating" | "hinge" | "wgan_gp" ["non_saturating"],
     "latent": int [32],                        # rnn generator: noise per step and per series
     "generator": "dense" | "conv" | "rnn",
     "g_layers": [{"width": int}, ...],         # units (dense, rnn) or channels (conv)
     "g_norm": "none" | "batch" | "layer" ["none"],
     "g_activation": str ["relu"],              # dense and conv generators
     "g_cell": "lstm" | "gru" ["lstm"],         # rnn generator
     "discriminator": "dense" | "conv" | "rnn",
     "d_layers": [{"width": int}, ...],
     "d_norm": "none" | "batch" | "layer" ["none"],
     "d_activation": str ["leaky_relu"],        # dense and conv discriminators
     "d_cell": "lstm" | "gru" ["lstm"], "bidirectional": bool [false],  # rnn discriminator
     "spectral_norm": bool [false],             # on every linear and conv of the discriminator
     "g_lr": float > 0 [2e-4], "d_lr": float > 0 [2e-4],
     "critic_steps": int >= 1 [1]}              # discriminator steps per generator step

Images (C, H, W) come out of a sigmoid (task images lie in ``[0, 1]``); sequences (T, C) out
of a linear layer, in the task's own scale.

Generators: ``dense`` is ``linear -> norm -> activation`` per layer, then a linear map to the
whole sample. ``conv`` is DCGAN's: a linear projection of the latent to ``g_layers[0].width``
maps of ``(H / 2**L, W / 2**L)`` for L layers, each layer a 4x4 stride-2 transposed
convolution doubling the size (``-> norm -> activation``), then a 3x3 convolution to C
channels; H and W must be divisible by ``2**L`` (8x8 digits take 1-3 layers). ``rnn`` is in the
style of C-RNN-GAN (without its output feedback): every time step gets ``latent`` fresh noise
values and the same ``latent`` per-series values (``latent_dim = (T + 1) * latent``), fed
through stacked LSTM or GRU layers (each followed by the norm) and a linear output per step; it
needs (T, C) data. The per-series part lets the network settle what holds for the whole series
(a waveform, its period), which per-step noise alone makes hard to learn.

Discriminators output one score per example (a logit, or a critic value for WGAN-GP).
``dense``: ``linear -> norm -> activation`` per layer on the flattened input. ``conv``: 4x4
stride-2 convolutions halving the size (2-D for images, 1-D over time for sequences), the
norm on every layer but the first (as DCGAN), then a linear map from the flattened maps; a
feature map that would shrink below one pixel or step is invalid. ``rnn``: stacked
(optionally bidirectional) LSTM or GRU layers, a linear score per step, averaged over time as
in C-RNN-GAN; it needs (T, C) data. Spectral norm wraps the discriminator's linear and
convolution layers (not the recurrent weights).

Norms: ``batch`` is batch norm; ``layer`` is `nn.LayerNorm` over features (dense layers, time
steps) and a one-group `nn.GroupNorm` over conv maps. Batch norm in a WGAN-GP critic is
invalid: it couples the examples of a batch, while the gradient penalty constrains each
example's gradient on its own (Gulrajani et al. use layer norm there). Activations
come from `GAN_ACTIVATIONS`: ``leaky_relu`` has slope 0.2 here (the GAN convention).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._common import (
    GAN_ACTIVATIONS,
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
from .generative import GenerativeModel

__all__ = [
    "CELLS",
    "DEFAULT_IMAGE_GAN",
    "DEFAULT_SEQUENCE_GAN",
    "GAN",
    "GANOptions",
    "LOSSES",
    "NORMS",
    "build_gan",
]

LOSSES = ("non_saturating", "hinge", "wgan_gp")
NORMS = ("none", "batch", "layer")
GENERATORS = ("dense", "conv", "rnn")
DISCRIMINATORS = ("dense", "conv", "rnn")
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}

_ARCH_KEYS = (
    "loss",
    "latent",
    "generator",
    "g_layers",
    "g_norm",
    "g_activation",
    "g_cell",
    "discriminator",
    "d_layers",
    "d_norm",
    "d_activation",
    "d_cell",
    "bidirectional",
    "spectral_norm",
    "g_lr",
    "d_lr",
    "critic_steps",
)

DEFAULT_IMAGE_GAN: dict[str, Any] = {
    "loss": "non_saturating",
    "latent": 32,
    "generator": "conv",
    "g_layers": [{"width": 64}, {"width": 32}],
    "g_norm": "batch",
    "g_activation": "relu",
    "discriminator": "conv",
    "d_layers": [{"width": 32}, {"width": 64}],
    "d_norm": "batch",
    "d_activation": "leaky_relu",
    "spectral_norm": False,
    "g_lr": 0.0002,
    "d_lr": 0.0002,
    "critic_steps": 1,
}
"""A small DCGAN for images (member of the built-in ``gan`` space): 2x2 -> 4x4 -> 8x8."""

DEFAULT_SEQUENCE_GAN: dict[str, Any] = {
    "loss": "non_saturating",
    "latent": 8,
    "generator": "rnn",
    "g_cell": "lstm",
    "g_layers": [{"width": 64}],
    "g_norm": "none",
    "discriminator": "rnn",
    "d_cell": "lstm",
    "bidirectional": True,
    "d_layers": [{"width": 64}],
    "d_norm": "none",
    "spectral_norm": False,
    "g_lr": 0.0005,
    "d_lr": 0.0005,
    "critic_steps": 1,
}
"""A small C-RNN-GAN for sequences (member of the built-in ``gan-rnn`` space): an LSTM
generator and a bidirectional LSTM discriminator."""


@dataclass(frozen=True)
class GANOptions:
    """The training choices an architecture makes (read by the ``gan`` trainer)."""

    loss: str = "non_saturating"
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    critic_steps: int = 1


class GAN(GenerativeModel):
    """A generator (latent ``(N, latent_dim)`` -> samples) and a discriminator (samples ->
    scores ``(N,)``), with the training options of their architecture.

    Attributes:
        generator: The generator network.
        discriminator: The discriminator (critic) network.
        options: Loss, learning rates and critic steps.
        recurrent_critic: Whether the discriminator has recurrent layers.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        data_shape: tuple[int, ...],
        latent_dim: int,
        options: GANOptions,
    ) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.data_shape = tuple(data_shape)
        self.latent_dim = latent_dim
        self.options = options
        self.recurrent_critic = any(isinstance(m, nn.RNNBase) for m in discriminator.modules())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Samples for latent vectors ``z`` ``(N, latent_dim)``."""
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples in the task's scale (images in ``[0, 1]``)."""
        return self.generator(self.latent(n, generator)).float()

    def check(self, x: torch.Tensor) -> None:
        """Score ``x`` with the discriminator and generate as many samples; check both shapes."""
        scores = self.discriminator(x)
        if tuple(scores.shape) != (len(x),):
            raise ValueError(f"discriminator gave scores {tuple(scores.shape)}, expected (N,)")
        fake = self.generator(self.latent(len(x)))
        if tuple(fake.shape) != tuple(x.shape):
            raise ValueError(f"generator gave {tuple(fake.shape)}, expected {tuple(x.shape)}")


# ------------------------------------------------------------------------------ pieces
class _Reshape(nn.Module):
    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class _Transpose(nn.Module):
    """(B, T, F) <-> (B, F, T)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class _SequenceBatchNorm(nn.Module):
    """Batch norm over the features of a (B, T, F) sequence (statistics over B and T)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class _Score(nn.Module):
    """Flatten, then a linear map to one score per example: (B, ...) -> (B,)."""

    def __init__(self, linear: nn.Module) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)).squeeze(1)


class _Recurrent(nn.Module):
    """Stacked recurrent layers over (B, T, F), each followed by its norm."""

    def __init__(self, layers: list[nn.Module], norms: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, norm in zip(self.layers, self.norms, strict=True):
            x = norm(layer(x)[0])
        return x


class _RecurrentGenerator(nn.Module):
    """Latents (B, (T + 1) * noise): per-series noise joined to every step's own noise ->
    recurrent layers -> a linear output per step (B, T, C)."""

    def __init__(self, steps: int, noise: int, body: _Recurrent, out: nn.Module) -> None:
        super().__init__()
        self.steps, self.noise = steps, noise
        self.body, self.out = body, out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        series = z[:, : self.noise].unsqueeze(1).expand(-1, self.steps, -1)
        per_step = z[:, self.noise :].reshape(z.shape[0], self.steps, self.noise)
        return self.out(self.body(torch.cat([per_step, series], dim=-1)))


class _RecurrentCritic(nn.Module):
    """Recurrent layers, a linear score per step, the mean over time: (B, T, C) -> (B,)."""

    def __init__(self, body: _Recurrent, out: nn.Module) -> None:
        super().__init__()
        self.body, self.out = body, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x)).mean(dim=(1, 2))


def _activation(name: Any, where: str) -> nn.Module:
    return make_activation(name, where, GAN_ACTIVATIONS)


def _norm(kind: str, features: int, layout: str) -> nn.Module:
    """A norm for (B, F) ``dense``, (B, C, ...) ``conv`` or (B, T, F) ``sequence`` tensors."""
    if kind == "none":
        return nn.Identity()
    if kind == "layer":
        conv = layout in ("conv1d", "conv2d")
        return nn.GroupNorm(1, features) if conv else nn.LayerNorm(features)
    if layout == "sequence":
        return _SequenceBatchNorm(features)
    if layout == "conv2d":
        return nn.BatchNorm2d(features)
    return nn.BatchNorm1d(features)  # dense (B, F) and conv1d (B, C, T)


def _widths(arch: Mapping[str, Any], key: str) -> list[int]:
    return [
        read_int(layer, "width", f"{key}.{i}.width")
        for i, layer in enumerate(read_layers(arch, ("width",), key=key))
    ]


def _positive(arch: Mapping[str, Any], key: str, default: float) -> float:
    value = read_float(arch, key, key, default=default, low=0.0, high=math.inf)
    if value <= 0:
        raise InvalidArchitecture(f"{key}: expected a number > 0, got {value!r}")
    return value


# --------------------------------------------------------------------------- builders
def _dense_generator(
    latent: int, widths: Sequence[int], norm: str, act: str, shape: tuple[int, ...]
) -> nn.Module:
    modules: list[nn.Module] = []
    features = latent
    for width in widths:
        modules += [
            nn.Linear(features, width),
            _norm(norm, width, "dense"),
            _activation(act, "g_activation"),
        ]
        features = width
    modules += [nn.Linear(features, math.prod(shape)), _Reshape(*shape)]
    return nn.Sequential(*modules)


def _conv_generator(
    latent: int, widths: Sequence[int], norm: str, act: str, shape: tuple[int, ...]
) -> nn.Module:
    channels, height, width = shape
    factor = 2 ** len(widths)
    if height % factor or width % factor:
        raise InvalidArchitecture(
            f"g_layers: {len(widths)} upsampling layers need H and W divisible by {factor}, "
            f"got {height}x{width}; use fewer layers"
        )
    h0, w0 = height // factor, width // factor
    modules: list[nn.Module] = [
        nn.Linear(latent, widths[0] * h0 * w0),
        _Reshape(widths[0], h0, w0),
        _norm(norm, widths[0], "conv2d"),
        _activation(act, "g_activation"),
    ]
    previous = widths[0]
    for filters in widths:
        modules += [
            nn.ConvTranspose2d(previous, filters, 4, stride=2, padding=1, bias=norm == "none"),
            _norm(norm, filters, "conv2d"),
            _activation(act, "g_activation"),
        ]
        previous = filters
    modules.append(nn.Conv2d(previous, channels, 3, padding=1))
    return nn.Sequential(*modules)


def _rnn_generator(
    noise: int, widths: Sequence[int], norm: str, cell: str, shape: tuple[int, ...]
) -> nn.Module:
    steps, channels = shape
    layers, norms, features = [], [], 2 * noise
    for width in widths:
        layers.append(CELLS[cell](features, width, batch_first=True))
        norms.append(_norm(norm, width, "sequence"))
        features = width
    return _RecurrentGenerator(
        steps, noise, _Recurrent(layers, norms), nn.Linear(features, channels)
    )


def _dense_discriminator(
    widths: Sequence[int], norm: str, act: str, shape: tuple[int, ...], sn: bool
) -> nn.Module:
    modules: list[nn.Module] = [nn.Flatten()]
    features = math.prod(shape)
    for width in widths:
        modules += [
            _spectral(nn.Linear(features, width), sn),
            _norm(norm, width, "dense"),
            _activation(act, "d_activation"),
        ]
        features = width
    modules.append(_Score(_spectral(nn.Linear(features, 1), sn)))
    return nn.Sequential(*modules)


def _conv_discriminator(
    widths: Sequence[int], norm: str, act: str, shape: tuple[int, ...], sn: bool
) -> nn.Module:
    image = len(shape) == 3
    conv: type[nn.Conv1d | nn.Conv2d]
    if image:
        channels, *size = shape
        modules: list[nn.Module] = []
        conv, layout = nn.Conv2d, "conv2d"
    else:  # (T, C): 1-D convolutions over time
        steps, channels = shape
        size = [steps]
        modules = [_Transpose()]
        conv, layout = nn.Conv1d, "conv1d"
    for i, filters in enumerate(widths):
        if min(size) < 2:
            raise InvalidArchitecture(
                f"d_layers.{i}: a stride-2 convolution would shrink a "
                f"{'x'.join(map(str, size))} feature map below 1 (input {shape}); "
                "use fewer layers"
            )
        size = [s // 2 for s in size]  # kernel 4, stride 2, padding 1
        kind = norm if i > 0 else "none"
        modules += [
            _spectral(conv(channels, filters, 4, stride=2, padding=1, bias=kind == "none"), sn),
            _norm(kind, filters, layout),
            _activation(act, "d_activation"),
        ]
        channels = filters
    modules.append(_Score(_spectral(nn.Linear(channels * math.prod(size), 1), sn)))
    return nn.Sequential(*modules)


def _rnn_discriminator(
    widths: Sequence[int],
    norm: str,
    cell: str,
    bidirectional: bool,
    shape: tuple[int, ...],
    sn: bool,
) -> nn.Module:
    layers, norms, features = [], [], shape[1]
    for width in widths:
        layers.append(CELLS[cell](features, width, batch_first=True, bidirectional=bidirectional))
        features = width * (2 if bidirectional else 1)
        norms.append(_norm(norm, features, "sequence"))
    return _RecurrentCritic(_Recurrent(layers, norms), _spectral(nn.Linear(features, 1), sn))


def _spectral(module: nn.Module, on: bool) -> nn.Module:
    # The hook-based form keeps models picklable (parametrized modules are not).
    return nn.utils.spectral_norm(module) if on else module


def _needs_sequence(key: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise InvalidArchitecture(
            f"{key}: 'rnn' needs (T, C) sequence data, got shape {shape}; use dense or conv"
        )


@register_family("gan", trainer="gan")
def build_gan(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int) -> GAN:
    """Build a `gan` architecture for (C, H, W) images or (T, C) sequences (``num_outputs``
    is unused)."""
    shape = tuple(input_shape)
    if len(shape) not in (2, 3):
        raise InvalidArchitecture(
            f"gan needs (C, H, W) image or (T, C) sequence data, got shape {shape}"
        )
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    loss = read_choice(arch, "loss", "loss", LOSSES, default="non_saturating")
    latent = read_int(arch, "latent", "latent", default=32)
    spectral = read_bool(arch, "spectral_norm", "spectral_norm", default=False)
    options = GANOptions(
        loss=loss,
        g_lr=_positive(arch, "g_lr", 2e-4),
        d_lr=_positive(arch, "d_lr", 2e-4),
        critic_steps=read_int(arch, "critic_steps", "critic_steps", default=1),
    )

    g_kind = read_choice(arch, "generator", "generator", GENERATORS)
    g_widths = _widths(arch, "g_layers")
    g_norm = read_choice(arch, "g_norm", "g_norm", NORMS, default="none")
    g_act = arch.get("g_activation", "relu")
    if g_kind == "rnn":
        _needs_sequence("generator", shape)
        cell = read_choice(arch, "g_cell", "g_cell", tuple(CELLS), default="lstm")
        generator = _rnn_generator(latent, g_widths, g_norm, cell, shape)
        latent_dim = (shape[0] + 1) * latent
    else:
        if g_kind == "conv" and len(shape) != 3:
            raise InvalidArchitecture(
                f"generator: 'conv' needs (C, H, W) image data, got shape {shape}; use rnn or dense"
            )
        build_generator = _conv_generator if g_kind == "conv" else _dense_generator
        generator = build_generator(latent, g_widths, g_norm, g_act, shape)
        latent_dim = latent
    if len(shape) == 3:
        generator = nn.Sequential(generator, nn.Sigmoid())

    d_kind = read_choice(arch, "discriminator", "discriminator", DISCRIMINATORS)
    d_widths = _widths(arch, "d_layers")
    d_norm = read_choice(arch, "d_norm", "d_norm", NORMS, default="none")
    if loss == "wgan_gp" and d_norm == "batch":
        raise InvalidArchitecture(
            "d_norm: batch norm couples the examples a WGAN-GP critic's gradient penalty "
            "treats one by one; use layer or none"
        )
    d_act = arch.get("d_activation", "leaky_relu")
    if d_kind == "rnn":
        _needs_sequence("discriminator", shape)
        discriminator = _rnn_discriminator(
            d_widths,
            d_norm,
            read_choice(arch, "d_cell", "d_cell", tuple(CELLS), default="lstm"),
            read_bool(arch, "bidirectional", "bidirectional", default=False),
            shape,
            spectral,
        )
    else:
        build_discriminator = _conv_discriminator if d_kind == "conv" else _dense_discriminator
        discriminator = build_discriminator(d_widths, d_norm, d_act, shape, spectral)
    return GAN(generator, discriminator, shape, latent_dim, options)
