"""The `vae` family: a variational autoencoder with a mirrored encoder and decoder.

Architecture (defaults in brackets)::

    {"network": "dense" | "conv" ["dense"],
     "layers": [{"width": int}, ...]                          # dense: hidden units
            or [{"filters": int, "downsample": bool [false]}, ...],  # conv: channels
     "kernel": odd int [3],                                   # conv only
     "activation": str ["relu"], "norm": "none" | "batch" | "layer" ["none"],
     "latent": int, "beta": float > 0 [1.0],
     "likelihood": "bernoulli" | "gaussian" [bernoulli for (C, H, W), else gaussian],
     "scale": "learned" | float > 0 ["learned"]}              # gaussian only

``layers`` lists the encoder from the input inward; the decoder runs the same layers in
reverse. A dense layer is ``linear -> norm -> activation``. A conv layer is ``conv (stride 2 if
downsample) -> norm -> activation`` (padding kernel // 2); its decoder mirror upsamples
(nearest, to the encoder's exact size) where the encoder downsampled, then convolves. The
encoder ends in a linear map to the posterior's mean and log-variance (``latent`` each); the
decoder starts with a linear map from the latent and ends with a layer that has no activation,
giving per-dimension Bernoulli logits or Gaussian means. ``"layer"`` norm is `nn.LayerNorm`
for dense layers and a one-group `nn.GroupNorm` for conv layers.

Likelihoods: ``bernoulli`` reads every input dimension as a probability (data must lie in
``[0, 1]``; the `vae` trainer refuses a child whose data does not) and is the default for
images; ``gaussian`` has the decoder's mean and a per-dimension scale that is shared by all
examples: learned (``"learned"``, a free log-scale per dimension, floored at `MIN_SCALE`) or
fixed (a number). Samples are the decoder's mean for a prior draw: probabilities in ``[0, 1]``
for Bernoulli, the mean itself for Gaussian. ``conv`` needs (C, H, W) inputs; ``dense`` takes
any shape, sequences (T, C) included. ``beta`` weights the KL term of the training loss only.
A learned Gaussian scale on quantised data (grey levels, a border pixel that is always 0)
shrinks to `MIN_SCALE` on the constant dimensions, so Gaussian and Bernoulli bits per dimension
of one image task do not compare. ``model(z)`` gives samples for latent vectors ``z``, as a
GAN's does; ``model.reconstruct(x)`` autoencodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ._common import (
    check_keys,
    make_activation,
    read_bool,
    read_choice,
    read_int,
    read_layers,
    read_mapping,
)
from ._registry import InvalidArchitecture, register_family
from .generative import GenerativeModel

__all__ = [
    "DEFAULT_IMAGE_VAE",
    "DEFAULT_SEQUENCE_VAE",
    "LIKELIHOODS",
    "MIN_SCALE",
    "VAE",
    "build_vae",
]

LIKELIHOODS = ("bernoulli", "gaussian")
NETWORKS = ("dense", "conv")
NORMS = ("none", "batch", "layer")
MIN_SCALE = 1e-3
"""Floor of a learned Gaussian scale, so a constant data dimension cannot drive the
likelihood to infinity."""

DEFAULT_IMAGE_VAE: dict[str, Any] = {
    "network": "dense",
    "layers": [{"width": 256}, {"width": 128}],
    "activation": "relu",
    "norm": "none",
    "latent": 8,
    "beta": 1.0,
}
"""A small dense Bernoulli VAE for images (member of the built-in ``vae`` space)."""

DEFAULT_SEQUENCE_VAE: dict[str, Any] = {
    "layers": [{"width": 256}, {"width": 128}],
    "activation": "relu",
    "norm": "none",
    "latent": 8,
    "beta": 1.0,
}
"""A small dense Gaussian VAE with a learned scale for sequences (member of ``vae-seq``)."""

_ARCH_KEYS = (
    "network",
    "layers",
    "kernel",
    "activation",
    "norm",
    "latent",
    "beta",
    "likelihood",
    "scale",
)
_DENSE_KEYS = ("width",)
_CONV_KEYS = ("filters", "downsample")


class VAE(GenerativeModel):
    """Encoder to a diagonal Gaussian posterior, decoder to a per-dimension likelihood.

    Attributes:
        likelihood: ``"bernoulli"`` or ``"gaussian"``.
        beta: Weight of the KL term in the training loss.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        data_shape: tuple[int, ...],
        latent_dim: int,
        likelihood: str,
        beta: float,
        scale: str | float = "learned",
    ) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.data_shape, self.latent_dim = tuple(data_shape), latent_dim
        self.likelihood, self.beta = likelihood, beta
        self.learned_scale = likelihood == "gaussian" and scale == "learned"
        if self.learned_scale:
            self.log_scale = nn.Parameter(torch.zeros(self.data_shape))
        elif likelihood == "gaussian":
            self.register_buffer("log_scale", torch.full(self.data_shape, math.log(float(scale))))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's mean and log-variance, each ``(B, latent_dim)``."""
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        return mean, log_var

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The likelihood's parameter ``(B, *data_shape)``: Bernoulli logits or Gaussian means."""
        return self.decoder(z)

    def scale(self) -> torch.Tensor:
        """The Gaussian's per-dimension standard deviation (Gaussian likelihood only)."""
        return self._log_scale().exp()

    def _log_scale(self) -> torch.Tensor:
        if self.learned_scale:
            return self.log_scale.clamp(min=math.log(MIN_SCALE))
        return self.log_scale

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """The data-scale mean of the decoder output ``out``."""
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def terms(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example reconstruction NLL and KL to the prior, in nats, each ``(B,)``.

        One posterior sample per example (the reparameterisation trick); ``generator`` (CPU)
        makes it reproducible, else the global generator draws it.
        """
        mean, log_var = self.encode(x)
        mean, log_var = mean.float(), log_var.float()
        std = torch.exp(0.5 * log_var)
        if generator is None:
            eps = torch.randn_like(std)
        else:
            eps = torch.randn(std.shape, generator=generator).to(std.device)
        out = self.decode(mean + std * eps).float()
        nll = self.nll(out, x.float()).flatten(1).sum(dim=1)
        kl = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(dim=1)
        return nll, kl

    def nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-dimension negative log-likelihood (nats) of ``x`` under decoder output ``out``."""
        if self.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(out, x, reduction="none")
        log_scale = self._log_scale()
        z = (x - out) * torch.exp(-log_scale)
        return 0.5 * z.square() + log_scale + 0.5 * math.log(2 * math.pi)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Samples (decoder means, in the data's scale) for latent vectors ``z``, as a GAN's."""
        return self.mean(self.decode(z).float())

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder mean of the posterior mean of ``x``, in the data's scale."""
        return self(self.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` decoder means of prior draws, in the data's scale."""
        return self(self.latent(n, generator))

    def check(self, x: torch.Tensor) -> None:
        """Encode ``x`` and decode its posterior mean; raise on a shape mismatch."""
        code = self.encoder(x)
        if tuple(code.shape) != (len(x), 2 * self.latent_dim):
            raise ValueError(
                f"encoder gave {tuple(code.shape)}, expected (B, {2 * self.latent_dim})"
            )
        out = self.decode(code[:, : self.latent_dim])
        if tuple(out.shape[1:]) != self.data_shape:
            raise ValueError(f"decoder gave {tuple(out.shape[1:])}, expected {self.data_shape}")


def _norm(kind: str, features: int, conv: bool) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(features) if conv else nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.GroupNorm(1, features) if conv else nn.LayerNorm(features)
    return nn.Identity()


def _dense(
    layers: list[Mapping[str, Any]],
    shape: tuple[int, ...],
    latent: int,
    norm: str,
    activation: Any,
) -> tuple[nn.Module, nn.Module]:
    widths = [read_int(layer, "width", f"layers.{i}.width") for i, layer in enumerate(layers)]
    features = math.prod(shape)
    encoder: list[nn.Module] = [nn.Flatten()]
    for n_in, n_out in zip([features, *widths], widths, strict=False):
        act = make_activation(activation, "activation")
        encoder += [nn.Linear(n_in, n_out, bias=norm != "batch"), _norm(norm, n_out, False), act]
    encoder.append(nn.Linear(widths[-1], 2 * latent))
    back = widths[::-1]
    decoder: list[nn.Module] = []
    for n_in, n_out in zip([latent, *back], back, strict=False):
        act = make_activation(activation, "activation")
        decoder += [nn.Linear(n_in, n_out, bias=norm != "batch"), _norm(norm, n_out, False), act]
    decoder += [nn.Linear(back[-1], features), nn.Unflatten(1, shape)]
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


def _conv(
    arch: Mapping[str, Any],
    layers: list[Mapping[str, Any]],
    shape: tuple[int, ...],
    latent: int,
    norm: str,
    activation: Any,
) -> tuple[nn.Module, nn.Module]:
    if len(shape) != 3:
        raise InvalidArchitecture(
            f"network: conv needs a (C, H, W) input, got shape {shape}; use network dense"
        )
    kernel = read_int(arch, "kernel", "kernel", default=3)
    if kernel % 2 == 0:
        raise InvalidArchitecture(f"kernel: must be odd, got {kernel}")
    pad, bias = kernel // 2, norm != "batch"
    channels, sizes = [shape[0]], [tuple(shape[1:])]
    downs: list[bool] = []
    encoder: list[nn.Module] = []
    for i, layer in enumerate(layers):
        where = f"layers.{i}"
        filters = read_int(layer, "filters", f"{where}.filters")
        down = read_bool(layer, "downsample", f"{where}.downsample", default=False)
        h, w = sizes[-1]
        if down:
            if min(h, w) < 2:
                raise InvalidArchitecture(
                    f"{where}.downsample: would shrink a {h}x{w} feature map below 1x1 "
                    f"(input {shape[1]}x{shape[2]}); use fewer downsampling layers"
                )
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        encoder += [
            nn.Conv2d(
                channels[-1], filters, kernel, stride=2 if down else 1, padding=pad, bias=bias
            ),
            _norm(norm, filters, True),
            make_activation(activation, "activation"),
        ]
        channels.append(filters)
        sizes.append((h, w))
        downs.append(down)
    inner = (channels[-1], *sizes[-1])
    encoder += [nn.Flatten(), nn.Linear(math.prod(inner), 2 * latent)]
    decoder: list[nn.Module] = [
        nn.Linear(latent, math.prod(inner)),
        make_activation(activation, "activation"),
        nn.Unflatten(1, inner),
    ]
    for i in range(len(layers), 0, -1):  # mirror of encoder layer i - 1
        if downs[i - 1]:
            decoder.append(nn.Upsample(size=sizes[i - 1], mode="nearest"))
        if i > 1:
            decoder += [
                nn.Conv2d(channels[i], channels[i - 1], kernel, padding=pad, bias=bias),
                _norm(norm, channels[i - 1], True),
                make_activation(activation, "activation"),
            ]
        else:
            decoder.append(nn.Conv2d(channels[1], shape[0], kernel, padding=pad))
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


@register_family("vae", trainer="vae")
def build_vae(arch: Mapping[str, Any], input_shape: tuple[int, ...], num_outputs: int) -> VAE:
    """Build a `vae` architecture generating inputs of ``input_shape`` (``num_outputs`` unused)."""
    arch = read_mapping(arch, "architecture")
    check_keys(arch, _ARCH_KEYS, "architecture")
    shape = tuple(input_shape)
    network = read_choice(arch, "network", "network", NETWORKS, default="dense")
    layers = read_layers(arch, _DENSE_KEYS if network == "dense" else _CONV_KEYS)
    latent = read_int(arch, "latent", "latent")
    norm = read_choice(arch, "norm", "norm", NORMS, default="none")
    activation = arch.get("activation", "relu")
    make_activation(activation, "activation")
    beta = arch.get("beta", 1.0)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta < math.inf:
        raise InvalidArchitecture(f"beta: expected a positive number, got {beta!r}")
    default = "bernoulli" if len(shape) == 3 else "gaussian"
    likelihood = read_choice(arch, "likelihood", "likelihood", LIKELIHOODS, default=default)
    scale = arch.get("scale", "learned")
    if "scale" in arch and likelihood != "gaussian":
        raise InvalidArchitecture("scale: only a gaussian likelihood has a scale")
    if scale != "learned" and (
        isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf
    ):
        raise InvalidArchitecture(f'scale: expected "learned" or a positive number, got {scale!r}')
    if network == "dense":
        encoder, decoder = _dense(layers, shape, latent, norm, activation)
    else:
        encoder, decoder = _conv(arch, layers, shape, latent, norm, activation)
    if network == "dense" and "kernel" in arch:
        raise InvalidArchitecture("kernel: only a conv network has a kernel")
    return VAE(encoder, decoder, shape, latent, likelihood, float(beta), scale)
