"""Training-time augmentation of sequence batches: what each augmentation changes, padding,
seeding, and that only sequence classification accepts it (trainer, config, CLI)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search import SearchConfig, run_search
from search.config import ConfigError
from trainers import TrainOptions, load_task
from trainers.augment import (
    AUGMENTATIONS,
    JITTER_SD,
    SHIFT_FRACTION,
    Augmenter,
    parse_augmentations,
)
from trainers.base import TrainerError
from trainers.classification import ClassificationTrainer
from trainers.forecasting import ForecastingTrainer


def test_names_are_parsed_and_unknown_ones_listed() -> None:
    assert parse_augmentations("scale, jitter,scale") == ("scale", "jitter")
    assert parse_augmentations(["shift"]) == ("shift",)
    for nothing in (None, "", "none", []):
        assert parse_augmentations(nothing) == ()
    with pytest.raises(ValueError, match=r"unknown augmentation 'warp'; known: scale, jitter"):
        parse_augmentations("scale,warp")


def ramps(batch: int = 64, steps: int = 50) -> torch.Tensor:
    """Series 1, 2, ..., steps on two channels (the second negated)."""
    t = torch.arange(1, steps + 1, dtype=torch.float32)
    return torch.stack([t, -t], dim=-1).expand(batch, -1, -1).clone()


def test_shift_moves_each_series_within_its_limit_repeating_the_edge() -> None:
    x = ramps()
    out = Augmenter(["shift"], seed=0)(x)
    limit = int(50 * SHIFT_FRACTION)
    offsets = set()
    for series in out:
        # a shift by k reads step t - k: the ramp is offset by k, clamped to 1..50
        k = 26 - int(series[25, 0].item())
        assert abs(k) <= limit
        expected = (torch.arange(50) - k).clamp(0, 49).float() + 1
        assert torch.equal(series[:, 0], expected) and torch.equal(series[:, 1], -expected)
        offsets.add(k)
    assert len(offsets) > 5  # series move independently


def test_scale_multiplies_each_channel_and_jitter_adds_small_noise() -> None:
    x = ramps()
    scaled = Augmenter(["scale"], seed=0)(x)
    factors = scaled / x  # one factor per series and channel, constant over time
    assert torch.allclose(factors, factors[:, :1, :].expand_as(factors))
    assert 0.05 < factors[:, 0, :].std() < 0.2 and abs(factors.mean() - 1) < 0.05
    noise = Augmenter(["jitter"], seed=0)(x) - x
    assert noise.std() == pytest.approx(JITTER_SD, rel=0.1)


def test_padding_stays_zero_and_is_never_read() -> None:
    x = ramps(batch=4, steps=20)
    lengths = torch.tensor([20, 12, 5, 1])
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    out = Augmenter(list(AUGMENTATIONS), seed=3)(x, lengths)
    for i, n in enumerate(lengths):
        assert torch.all(out[i, n:] == 0)
    # shifted alone, every valid step holds a value of the series' own valid steps
    shifted = Augmenter(["shift"], seed=3)(x, lengths)
    for i, n in enumerate(lengths):
        assert set(shifted[i, :n, 0].tolist()) <= set(range(1, int(n) + 1))


def test_same_seed_same_batches() -> None:
    x = ramps()
    names = list(AUGMENTATIONS)
    assert torch.equal(Augmenter(names, 1)(x), Augmenter(names, 1)(x))
    assert not torch.equal(Augmenter(names, 1)(x), Augmenter(names, 2)(x))
    assert Augmenter([], 0)(x) is x and not Augmenter([], 0)


def sequence_model(task) -> nn.Module:
    steps, channels = task.input_shape
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(steps * channels, task.num_classes))


def test_the_trainer_augments_training_batches_only() -> None:
    task = load_task("uea:BasicMotions", seed=0)
    trainer = ClassificationTrainer()
    trainer.cv_folds = 0  # holdout: the result's state is one model's
    plain = trainer.fit(sequence_model(task), task, TrainOptions(epochs=2, seed=0))
    augmented = TrainOptions(epochs=2, seed=0, augment=("scale", "jitter", "shift"))
    first = trainer.fit(sequence_model(task), task, augmented)
    again = trainer.fit(sequence_model(task), task, augmented)
    assert first.history == again.history  # seeded
    train_losses = [[h["train_loss"] for h in r.history] for r in (plain, first)]
    assert train_losses[0] != train_losses[1]
    assert not first.diverged and 0.0 <= first.test_accuracy <= 1.0
    # the test split is scored unaugmented: what the kept weights score on it
    model = sequence_model(task)
    model.load_state_dict(again.state_dict)
    with torch.no_grad():
        accuracy = (model.eval()(task.x_test).argmax(1) == task.y_test).float().mean()
    assert accuracy.item() == pytest.approx(again.test_accuracy)


def test_other_tasks_refuse_augmentation() -> None:
    digits = load_task("digits", seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(TrainerError, match=r"sequence classification.*'digits'.*\(1, 8, 8\)"):
        ClassificationTrainer().fit(
            model, digits, TrainOptions(epochs=1, seed=0, augment=("shift",))
        )
    forecast = load_task("forecast:Airline", seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(forecast.input_shape[0], forecast.horizon))
    assert forecast.input_shape[1] == 1
    with pytest.raises(TrainerError, match="forecasting"):
        ForecastingTrainer().fit(
            model, forecast, TrainOptions(epochs=1, seed=0, augment=("jitter",))
        )


def test_search_settings_check_augmentation_before_anything_runs(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"augment: unknown augmentation 'warp'"):
        SearchConfig(augment="warp")
    assert SearchConfig(augment="shift, scale").augment == "shift,scale"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = SearchConfig(task="digits", augment="shift", tracking_uri=uri, quiet=True)
    with pytest.raises(ConfigError, match=r"augment: .*sequence classification.*'digits'"):
        run_search(config)
    assert not (tmp_path / "mlflow.db").exists()  # nothing recorded
