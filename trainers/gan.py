"""The trainer of the `gan` family: alternating discriminator and generator steps.

Every training batch takes one discriminator step; every ``critic_steps``-th batch (the first
included) also takes one generator step, so an epoch is one pass over the data whatever the
ratio, and a child with more critic steps makes fewer generator steps per epoch. Losses, from
the architecture:

- ``non_saturating`` (DCGAN): the discriminator minimises the logistic loss on real and fake
  examples, the generator ``-log D(G(z))``;
- ``hinge``: ``relu(1 - D(x)) + relu(1 + D(G(z)))`` for the discriminator, ``-D(G(z))`` for the
  generator;
- ``wgan_gp``: the critic minimises ``D(G(z)) - D(x)`` plus `GP_WEIGHT` times the gradient
  penalty ``(|grad D(x_hat)| - 1)^2`` on random interpolates, the generator ``-D(G(z))``.

Two Adam optimizers at the architecture's learning rates, with betas ``(0.5, 0.999)`` (DCGAN)
or ``(0, 0.9)`` for WGAN-GP (Gulrajani et al.); ``TrainOptions.lr`` is unused. On CUDA
the forward passes run under mixed precision with one gradient scaler for both optimizers;
the scores are cast to fp32 before the losses, and the gradient penalty's double backward runs
in fp32 (with cuDNN off for a recurrent critic, whose cuDNN kernels have no double backward).
The CPU path is plain fp32.

``train_d_loss`` (penalty included) and ``train_g_loss`` (the latest generator step's) are
reported per epoch. Where no gradient scaler is at work, a non-finite gradient makes the
reported loss NaN, so an update that is about to wreck the weights ends the child as diverged
rather than surfacing later as NaN samples. The reward is the samples' ``quality`` (or their
``coverage`` or ``confidence``) from the reference classifier (see `trainers.quality`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from spaces.families.gan import GAN
from trainers.base import register_trainer
from trainers.device import autocast, grad_scaler
from trainers.generative import GenerativeTrainer
from trainers.tasks import Task

__all__ = ["GP_WEIGHT", "GANTrainer", "adam_betas", "discriminator_loss", "generator_loss"]

GP_WEIGHT = 10.0
"""Weight of WGAN-GP's gradient penalty (Gulrajani et al.)."""


def adam_betas(loss: str) -> tuple[float, float]:
    """Adam's betas for ``loss``: ``(0, 0.9)`` for WGAN-GP, DCGAN's ``(0.5, 0.999)`` otherwise."""
    return (0.0, 0.9) if loss == "wgan_gp" else (0.5, 0.999)


def discriminator_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss (without WGAN-GP's penalty) from scores of real and fake data."""
    if loss == "non_saturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if loss == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if loss == "wgan_gp":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown GAN loss {loss!r}")


def generator_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss from the discriminator's scores of its samples."""
    if loss == "non_saturating":
        return F.softplus(-fake).mean()
    if loss in ("hinge", "wgan_gp"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {loss!r}")


@dataclass
class _State:
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    step: int = 0
    g_loss: torch.Tensor = field(default_factory=lambda: torch.tensor(math.nan))
    """The latest generator step's loss (the first batch takes one, so NaN is never reported)."""


@register_trainer("gan")
class GANTrainer(GenerativeTrainer[GAN]):
    """Trains a `spaces.families.gan.GAN` with its architecture's loss, learning rates and
    critic steps."""

    model_class = GAN
    losses = ("d_loss", "g_loss")
    reward_metrics = ("quality", "coverage", "confidence")

    def prepare(self, model: GAN, task: Task, *, lr: float, device: torch.device) -> _State:
        """Adam for each network at the architecture's rates, and a gradient scaler."""
        options = model.options
        betas = adam_betas(options.loss)
        return _State(
            g_optimizer=torch.optim.Adam(
                model.generator.parameters(), lr=options.g_lr, betas=betas
            ),
            d_optimizer=torch.optim.Adam(
                model.discriminator.parameters(), lr=options.d_lr, betas=betas
            ),
            scaler=grad_scaler(device),
            device=device,
        )

    def train_step(self, model: GAN, state: _State, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One discriminator step, and a generator step every ``critic_steps`` batches."""
        options, dev, scaler = model.options, state.device, state.scaler
        generator, discriminator = model.generator, model.discriminator
        with_generator = state.step % options.critic_steps == 0
        state.step += 1
        z = torch.randn(len(batch), model.latent_dim, device=dev)

        with autocast(dev):
            # the generator's graph is kept only when it is trained on these samples
            with contextlib.nullcontext() if with_generator else torch.no_grad():
                fake = generator(z)
            real_scores = discriminator(batch).float()
            fake_scores = discriminator(fake.detach()).float()
        d_loss = discriminator_loss(options.loss, real_scores, fake_scores)
        if options.loss == "wgan_gp":
            d_loss = d_loss + GP_WEIGHT * _gradient_penalty(model, batch, fake.detach())
        state.d_optimizer.zero_grad(set_to_none=True)
        scaler.scale(d_loss).backward()
        d_report = d_loss.detach() + self._nonfinite(discriminator.parameters(), scaler)
        scaler.step(state.d_optimizer)

        if with_generator:
            discriminator.requires_grad_(False)
            try:
                with autocast(dev):
                    scores = discriminator(fake).float()
                g_loss = generator_loss(options.loss, scores)
                state.g_optimizer.zero_grad(set_to_none=True)
                scaler.scale(g_loss).backward()
            finally:
                discriminator.requires_grad_(True)
            state.g_loss = g_loss.detach() + self._nonfinite(generator.parameters(), scaler)
            scaler.step(state.g_optimizer)
        scaler.update()
        return {"d_loss": d_report, "g_loss": state.g_loss}

    def reward(self, val: dict[str, float], metric: str) -> float:
        """The evaluation's ``metric`` (``quality`` by default), 0 when it is not finite."""
        value = float(val[metric])
        return value if math.isfinite(value) else 0.0

    @staticmethod
    def _nonfinite(
        parameters: Iterable[nn.Parameter], scaler: torch.amp.GradScaler
    ) -> torch.Tensor:
        """0, or NaN when a gradient is not finite (only where no scaler skips such steps)."""
        grads = [p.grad for p in parameters if p.grad is not None]
        if scaler.is_enabled() or not grads:
            return torch.zeros(())
        finite = torch.stack([torch.isfinite(g).all() for g in grads]).all()
        zero = torch.zeros((), device=finite.device)
        return torch.where(finite, zero, zero + math.nan)


def _gradient_penalty(model: GAN, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's ``mean((|grad_x D(x_hat)| - 1)^2)`` on random interpolates, in fp32."""
    alpha = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device)
    mixed = (alpha * real + (1.0 - alpha) * fake.float()).requires_grad_(True)
    no_cudnn = model.recurrent_critic and real.device.type == "cuda"
    with torch.backends.cudnn.flags(enabled=False) if no_cudnn else contextlib.nullcontext():
        scores = model.discriminator(mixed).float()
        (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
