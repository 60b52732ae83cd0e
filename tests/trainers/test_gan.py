"""The `gan` trainer, on digits and waves (the family: tests/spaces/test_gan_family.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import spaces.families.gan  # noqa: F401  (registers the family)
import trainers.gan  # noqa: F401  (registers the trainer)
from spaces.families import build_model
from spaces.families.gan import DEFAULT_IMAGE_GAN, DEFAULT_SEQUENCE_GAN
from tests.examples import DIGITS, FAST_IMAGE_GAN
from trainers import TrainOptions, get_trainer, load_task

FAST_SEQUENCE_GAN = {**FAST_IMAGE_GAN, "latent": 8}


@pytest.fixture(scope="module")
def tasks():
    return {name: load_task(name, seed=0) for name in ("digits", "waves")}


@pytest.mark.parametrize("arch", [DEFAULT_IMAGE_GAN, DEFAULT_SEQUENCE_GAN])
@pytest.mark.parametrize("loss", ["non_saturating", "hinge", "wgan_gp"])
def test_train_steps_update_both_networks(arch, loss, tasks):
    task = tasks["digits" if arch is DEFAULT_IMAGE_GAN else "waves"]
    arch = {**arch, "loss": loss, "d_norm": "layer", "spectral_norm": True, "critic_steps": 2}
    torch.manual_seed(0)
    model = build_model("gan", arch, task.input_shape, num_outputs=1)
    trainer = get_trainer("gan")
    state = trainer.prepare(model, task, lr=0.0, device=torch.device("cpu"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = [trainer.train_step(model, state, task.x_train[i : i + 8]) for i in (0, 8)]
    for losses in steps:
        assert set(losses) == {"d_loss", "g_loss"}
        assert all(torch.isfinite(v) and not v.requires_grad for v in losses.values())
    # critic_steps 2: the generator steps at batch 0 only; batch 1 repeats its loss
    assert torch.equal(steps[0]["g_loss"], steps[1]["g_loss"])
    assert not torch.equal(steps[0]["d_loss"], steps[1]["d_loss"])
    after = model.state_dict()
    for part in ("generator", "discriminator"):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part


@pytest.mark.parametrize("loss", ["non_saturating", "hinge", "wgan_gp"])
@pytest.mark.parametrize("task_name", ["digits", "waves"])
def test_fit_gives_a_quality_reward(task_name, loss, tasks, reference_dir):
    task = tasks[task_name]
    arch = {**(FAST_IMAGE_GAN if task_name == "digits" else FAST_SEQUENCE_GAN), "loss": loss}
    torch.manual_seed(0)
    model = build_model("gan", arch, task.input_shape, num_outputs=1)
    reports = []
    result = get_trainer("gan").fit(
        model,
        task,
        TrainOptions(epochs=2, seed=0, batch_size=16, reference_dir=reference_dir),
        report=reports.append,
    )
    assert result.failure == "" and not result.diverged
    assert 0.0 < result.reward <= 1.0
    assert result.reward == result.metrics["val_quality"]
    assert np.isfinite(result.metrics["val_fd"]) and "test_fd" in result.metrics
    assert [r["epoch"] for r in reports] == [1, 2]
    assert all(np.isfinite(r["train_d_loss"]) and np.isfinite(r["train_g_loss"]) for r in reports)
    assert result.artifacts and all(
        path.startswith("samples/") and png.startswith(b"\x89PNG")
        for path, png in result.artifacts.items()
    )
    assert result.state_dict and not model.training


def test_absurd_learning_rates_diverge(tasks, reference_dir):
    arch = {**FAST_IMAGE_GAN, "d_layers": [{"width": 64}] * 2, "g_lr": 1e3, "d_lr": 1e3}
    torch.manual_seed(0)
    model = build_model("gan", arch, DIGITS, num_outputs=1)
    result = get_trainer("gan").fit(
        model, tasks["digits"], TrainOptions(epochs=2, seed=0, reference_dir=reference_dir)
    )
    assert result.failure.startswith("diverged"), result.failure
    assert result.diverged and result.reward == 0.0 and result.state_dict == {}


class _Constant(nn.Module):
    """A generator that ignores its latent: every sample is the same image."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.image = nn.Parameter(torch.zeros(shape))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.image).expand(len(z), *self.image.shape)


def test_a_constant_generator_is_mode_collapse(tasks, reference_dir):
    torch.manual_seed(0)
    model = build_model("gan", FAST_IMAGE_GAN, DIGITS, num_outputs=1)
    model.generator = _Constant(DIGITS)
    result = get_trainer("gan").fit(
        model, tasks["digits"], TrainOptions(epochs=1, seed=0, reference_dir=reference_dir)
    )
    assert result.failure.startswith("mode collapse"), result.failure
    assert result.reward == 0.0 and not result.diverged
    assert "samples/epoch-001.png" in result.artifacts


class _SqrtCritic(nn.Module):
    """Finite scores (all 0 at the start) whose gradient is not finite."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1).sum(1) * self.w).abs().sqrt()


def test_a_non_finite_gradient_reports_a_nan_loss(tasks):
    task = tasks["digits"]
    model = build_model("gan", FAST_IMAGE_GAN, DIGITS, num_outputs=1)
    model.discriminator = _SqrtCritic()
    trainer = get_trainer("gan")
    state = trainer.prepare(model, task, lr=0.0, device=torch.device("cpu"))
    losses = trainer.train_step(model, state, task.x_train[:8])
    assert torch.isnan(losses["d_loss"]) and torch.isnan(losses["g_loss"])
