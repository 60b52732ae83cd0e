"""The trainer of the `vae` family: the negative ELBO with a KL weight, rewarded by bits/dim.

A training step draws one posterior sample per example (the reparameterisation trick) and takes
an Adam step (at ``TrainOptions.lr``) on ``reconstruction NLL + beta * KL``, under mixed
precision on CUDA. Losses are reported in bits per dimension: ``train_loss`` (the weighted
objective), ``train_recon`` and ``train_kl``.

Every evaluation adds the validation negative ELBO with ``beta = 1`` in bits per dimension
(``val_bpd``, one seeded posterior sample per example), so it is a true bound whatever beta the
child trained with, comparable across architectures of one likelihood, and its two parts
(``val_recon``, ``val_kl``). For a Bernoulli likelihood on binary data it bounds the data's
negative log-probability; on grey levels in ``[0, 1]`` it is the usual soft-target
cross-entropy, whose floor is the targets' own binary entropy rather than 0, the same for every
child. For a Gaussian likelihood it is the negative log-density in nats per dimension divided
by ``ln 2``, without dequantisation: a density, so it can be negative, and it compares models of
the same continuous data (not with discrete bits per dimension).

Rewards (``TrainOptions.metric``): ``"bpd"`` (default) is ``1 / (1 + 2 ** bpd)``, in ``(0, 1)``,
decreasing in bpd and defined for negative values too (it is ``p / (1 + p)`` of the
per-dimension geometric-mean likelihood ``p = 2 ** -bpd``); ``"quality"`` is the samples'
``quality`` from the reference classifier (see `trainers.quality`). A Bernoulli likelihood on
data outside ``[0, 1]`` ends the child at once with reward 0 and the reason in
``TrainResult.failure``.

A VAE's first samples are all alike: until the decoder learns to use the latent (posterior
collapse), every prior draw decodes to about the data's mean. On digits at lr 3e-3 the default
architecture leaves that phase after about 100 steps (6-7 epochs); high beta or a small latent
can stay there. The shared loop never keeps a collapsed evaluation and ends a child whose
samples are still collapsed after half its epochs, as for any generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from spaces.families.vae import VAE
from trainers.base import ReportFn, TrainResult, count_parameters, register_trainer
from trainers.device import autocast, grad_scaler
from trainers.generative import GenerativeTrainer
from trainers.options import TrainOptions
from trainers.tasks import Task

__all__ = ["VAETrainer", "bpd_reward"]

EVAL_BATCH = 512
EVAL_SEED = 0
"""Seeds the posterior samples of every bpd evaluation, so they are reproducible."""


def bpd_reward(bpd: float) -> float:
    """``1 / (1 + 2 ** bpd)``: bounded in ``(0, 1)``, larger for smaller bpd; 0 if not finite."""
    if not math.isfinite(bpd) or bpd > 1000:  # 2 ** bpd would overflow
        return 0.0
    return 1.0 / (1.0 + 2.0**bpd)


@dataclass
class _State:
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    dims: int


@register_trainer("vae")
class VAETrainer(GenerativeTrainer[VAE]):
    """Trains a `spaces.families.vae.VAE` on the negative ELBO (KL weighted by its beta)."""

    model_class = VAE
    losses = ("loss", "recon", "kl")
    extra_metrics = ("bpd", "recon", "kl")
    reward_metrics = ("bpd", "quality")
    lower_is_better = frozenset({"loss", "bpd", "recon", "kl"})

    def train(
        self,
        model: nn.Module,
        task: Task,
        options: TrainOptions,
        metric: str,
        report: ReportFn | None,
    ) -> TrainResult:
        """As `GenerativeTrainer.train`; a Bernoulli model on data outside [0, 1] fails at once."""
        failure = _likelihood_mismatch(model, task)
        if failure:
            return TrainResult(
                reward=0.0,
                val_accuracy=0.0,
                test_accuracy=None,
                best_epoch=0,
                epochs=0,
                params=count_parameters(model),
                train_seconds=0.0,
                metric=metric,
                failure=failure,
            )
        return super().train(model, task, options, metric, report)

    def prepare(self, model: VAE, task: Task, *, lr: float, device: torch.device) -> _State:
        """Adam at ``lr`` and a gradient scaler (enabled for fp16 on CUDA only)."""
        return _State(
            optimizer=torch.optim.Adam(model.parameters(), lr=lr),
            scaler=grad_scaler(device),
            device=device,
            dims=math.prod(model.data_shape),
        )

    def train_step(self, model: VAE, state: _State, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One Adam step on ``recon + beta * KL``; the three terms in bits per dimension."""
        to_bits = 1.0 / (state.dims * math.log(2))
        with autocast(state.device):
            nll, kl = model.terms(batch)
        recon, kl = nll.mean() * to_bits, kl.mean() * to_bits
        loss = recon + model.beta * kl
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def evaluate_extra(self, model: VAE, x: torch.Tensor) -> dict[str, float]:
        """Validation negative ELBO (beta = 1) in bits per dimension, and its two parts."""
        generator = torch.Generator().manual_seed(EVAL_SEED)
        nll_sum = kl_sum = 0.0
        for i in range(0, len(x), EVAL_BATCH):
            nll, kl = model.terms(x[i : i + EVAL_BATCH], generator)
            nll_sum += float(nll.double().sum())
            kl_sum += float(kl.double().sum())
        to_bits = 1.0 / (len(x) * math.prod(model.data_shape) * math.log(2))
        recon, divergence = nll_sum * to_bits, kl_sum * to_bits
        return {"bpd": recon + divergence, "recon": recon, "kl": divergence}

    def reward(self, val: dict[str, float], metric: str) -> float:
        """``bpd``: `bpd_reward` of ``val["bpd"]``; ``quality``: the samples' ``quality``."""
        if metric == "bpd":
            return bpd_reward(val["bpd"])
        value = float(val["quality"])
        return value if math.isfinite(value) else 0.0


def _likelihood_mismatch(model: nn.Module, task: Task) -> str:
    if getattr(model, "likelihood", None) != "bernoulli":
        return ""
    low = min(float(x.min()) for x in (task.x_train, task.x_val, task.x_test))
    high = max(float(x.max()) for x in (task.x_train, task.x_val, task.x_test))
    if low >= 0.0 and high <= 1.0:
        return ""
    return (
        f"likelihood: a Bernoulli likelihood needs data in [0, 1], but task {task.name!r} "
        f"spans [{low:.3g}, {high:.3g}]; use likelihood gaussian"
    )
