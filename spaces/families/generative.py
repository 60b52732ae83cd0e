"""The protocol of generative families: a model one can sample from.

A generative family (``gan``, ``vae``) builds a `GenerativeModel` instead of a predictor. Its
samples have the shape of the task's inputs, in the task's own scale (images in ``[0, 1]``,
sequences as the task stores them), so the same measure of sample quality applies to every
generative family. Which trainer trains it is declared when the family is registered
(``register_family("gan", trainer="gan")``).
"""

from __future__ import annotations

import abc

import torch
from torch import nn

__all__ = ["GenerativeModel"]


class GenerativeModel(nn.Module, abc.ABC):
    """A network that generates samples shaped like one task input.

    Attributes:
        data_shape: The shape of one sample, without the batch dimension.
        latent_dim: Size of the latent vector a sample is drawn from.
    """

    data_shape: tuple[int, ...]
    latent_dim: int

    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples ``(n, *data_shape)`` on the model's device, without gradients.

        ``generator`` (a CPU `torch.Generator`) makes the latent draws reproducible.
        """

    @abc.abstractmethod
    def check(self, x: torch.Tensor) -> None:
        """Run every part of the model on a data batch ``x``; raise on any shape mismatch."""

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal latent vectors ``(n, latent_dim)`` on the model's device."""
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator).to(device)
