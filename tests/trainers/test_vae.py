"""The `vae` trainer (the family: tests/spaces/test_vae_family.py)."""

from __future__ import annotations

import math

import pytest
import torch

import spaces.families.vae as vae_family
import trainers.vae as vae_trainer
from spaces.families import build_model
from spaces.families.vae import DEFAULT_IMAGE_VAE, DEFAULT_SEQUENCE_VAE
from tests.examples import DIGITS, SMALL_CONV_VAE
from trainers import TrainOptions, load_task
from trainers.tasks import Task
from trainers.vae import VAETrainer, bpd_reward


def _small(name: str, n: int = 320) -> Task:
    """The task cut to ``n`` training and ``n // 2`` validation and test inputs (fast to fit)."""
    task = load_task(name, seed=0)
    m = n // 2
    return Task(
        name=f"{name}-small",
        kind=task.kind,
        input_shape=task.input_shape,
        num_classes=task.num_classes,
        x_train=task.x_train[:n],
        y_train=task.y_train[:n],
        x_val=task.x_val[:m],
        y_val=task.y_val[:m],
        x_test=task.x_test[:m],
        y_test=task.y_test[:m],
    )


def test_bpd_reward_is_bounded_and_decreasing() -> None:
    values = [bpd_reward(b) for b in (-50.0, -3.0, 0.0, 0.5, 8.0, 1e4)]
    assert all(0 <= v < 1 for v in values) and values == sorted(values, reverse=True)
    assert bpd_reward(0.0) == 0.5 and bpd_reward(float("nan")) == 0.0
    trainer = VAETrainer()
    assert trainer.reward({"bpd": 1.0, "quality": 0.7}, "quality") == 0.7
    assert trainer.reward({"bpd": 1.0, "quality": 0.7}, "bpd") == pytest.approx(1 / 3)


# Configurations whose samples are no longer collapsed after two epochs of 320 examples (the
# shared loop ends a child whose samples are still all alike after half its epochs).
FAST = {
    "digits": SMALL_CONV_VAE,
    "waves": {**DEFAULT_SEQUENCE_VAE, "norm": "batch", "latent": 4, "beta": 0.5},
}


def _fit(name: str, reference_dir: str, report=None, **options):
    task = _small(name)
    model = build_model("vae", FAST[name], task.input_shape, task.num_outputs)
    options = {"epochs": 2, "seed": 0, "lr": 3e-3, "batch_size": 16, **options}
    return model, VAETrainer().fit(
        model, task, TrainOptions(reference_dir=reference_dir, **options), report
    )


@pytest.mark.parametrize("name", ["digits", "waves"])
def test_fit_two_epochs(name, reference_dir) -> None:
    reports = []
    model, result = _fit(name, reference_dir, report=reports.append)
    assert not result.failure and 0 < result.reward < 1
    assert result.reward == bpd_reward(result.metrics["val_bpd"])
    for key in ("val_bpd", "val_fd", "val_quality", "val_recon", "val_kl", "test_bpd"):
        assert math.isfinite(result.metrics[key]), key
    bpd = result.metrics["val_bpd"]
    assert bpd == pytest.approx(result.metrics["val_recon"] + result.metrics["val_kl"])
    assert [r["epoch"] for r in reports] == [1, 2]
    assert {"train_loss", "train_recon", "train_kl"} <= set(reports[0])
    assert result.artifacts and all(p.endswith(".png") for p in result.artifacts)
    assert all(png.startswith(b"\x89PNG") for png in result.artifacts.values())
    assert result.state_dict and not model.training


def test_fit_with_the_quality_reward(reference_dir) -> None:
    _, result = _fit("digits", reference_dir, metric="quality")
    assert result.metric == "quality" and not result.failure
    assert result.reward == result.metrics["val_quality"] > 0


def test_validation_bpd_falls_with_training_on_digits() -> None:
    """A few epochs on digits lower the validation bound: a real learning signal."""
    task = load_task("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("vae", DEFAULT_IMAGE_VAE, task.input_shape, task.num_outputs)
    trainer = VAETrainer()
    state = trainer.prepare(model, task, lr=3e-3, device=torch.device("cpu"))

    def bpd() -> float:
        model.eval()
        value = trainer.evaluate_extra(model, task.x_val)["bpd"]
        model.train()
        return value

    start = bpd()
    order = torch.Generator().manual_seed(0)
    for _ in range(10):
        perm = torch.randperm(len(task.x_train), generator=order)
        for i in range(0, len(perm), 64):
            trainer.train_step(model, state, task.x_train[perm[i : i + 64]])
    after = bpd()
    assert start > 0.65 and after < 0.61, (start, after)


@pytest.mark.parametrize("name", ["digits", "waves"])
def test_train_step_under_mixed_precision(name, monkeypatch) -> None:
    """bf16 autocast (as on CUDA) leaves the losses float32 and finite; CPU stands in for it."""
    monkeypatch.setattr(
        vae_trainer, "autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16)
    )
    task = _small(name)
    model = build_model("vae", FAST[name], task.input_shape, task.num_outputs)
    trainer = VAETrainer()
    state = trainer.prepare(model, task, lr=3e-3, device=torch.device("cpu"))
    for i in range(2):
        losses = trainer.train_step(model, state, task.x_train[i * 32 : (i + 1) * 32])
        assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


def test_nan_model_and_absurd_lr_diverge(reference_dir, monkeypatch) -> None:
    task = _small("digits")
    model = build_model("vae", DEFAULT_IMAGE_VAE, task.input_shape, task.num_outputs)
    monkeypatch.setattr(model, "decode", lambda z: torch.full((len(z), *DIGITS), math.nan))
    result = VAETrainer().fit(
        model, task, TrainOptions(epochs=2, seed=0, reference_dir=reference_dir)
    )
    assert result.reward == 0.0 and result.diverged and result.state_dict == {}
    assert result.failure.startswith("diverged"), result.failure

    model = build_model("vae", DEFAULT_IMAGE_VAE, task.input_shape, task.num_outputs)
    result = VAETrainer().fit(
        model, task, TrainOptions(epochs=3, seed=0, lr=1e6, reference_dir=reference_dir)
    )
    assert result.reward == 0.0 and result.failure.startswith("diverged"), result.failure


def test_bernoulli_on_data_outside_the_unit_interval_fails_clearly(reference_dir) -> None:
    task = _small("waves")
    arch = {**DEFAULT_SEQUENCE_VAE, "likelihood": "bernoulli"}
    model = build_model("vae", arch, task.input_shape, task.num_outputs)
    result = VAETrainer().fit(
        model, task, TrainOptions(epochs=2, seed=0, reference_dir=reference_dir)
    )
    assert result.reward == 0.0 and result.epochs == 0 and not result.diverged
    assert result.failure.startswith("likelihood: a Bernoulli likelihood needs data in [0, 1]")
    assert "gaussian" in result.failure


def test_modules_register() -> None:
    from spaces.families import family_trainer
    from trainers import get_trainer

    assert family_trainer("vae") == "vae"
    assert isinstance(get_trainer("vae"), VAETrainer)
    assert vae_family.build_vae is not None and vae_trainer.VAETrainer is VAETrainer
