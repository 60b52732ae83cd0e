from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainers import (
    ClassificationTrainer,
    Task,
    Trainer,
    TrainerError,
    autocast,
    autocast_dtype,
    configure_cpu_threads,
    get_trainer,
    grad_scaler,
    list_trainers,
    load_task,
    pick_device,
    register_trainer,
)
from trainers import base as base_module

EPOCH_KEYS = {
    "epoch",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "val_macro_f1",
    "val_uar",
    "reward",
}
TASK_DATA = (
    "input_shape",
    "num_classes",
    "x_train",
    "y_train",
    "x_val",
    "y_val",
    "x_test",
    "y_test",
)


@pytest.fixture(scope="module")
def digits() -> Task:
    return load_task("digits", seed=0)


def mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 10)
    )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


class Saboteur(nn.Module):
    """An MLP that counts its training steps and misbehaves after ``after`` of them.

    ``mode="roll"`` shifts its eval-mode logits by one class (accuracy near 0); ``mode="nan"``
    makes every output NaN. The step count is a buffer, so restoring an early state dict
    restores good behaviour.
    """

    def __init__(self, after: int, mode: str) -> None:
        super().__init__()
        self.net = mlp()
        self.after, self.mode = after, mode
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.steps += 1
        logits = self.net(x)
        if self.steps > self.after:
            if self.mode == "nan":
                return logits * math.nan
            if not self.training:
                return logits.roll(1, dims=1)
        return logits


def batches_per_epoch(task: Task, batch_size: int = 64) -> int:
    return math.ceil(len(task.x_train) / batch_size)


def test_registry_has_classification() -> None:
    assert "classification" in list_trainers()
    trainer = get_trainer("classification")
    assert isinstance(trainer, ClassificationTrainer) and isinstance(trainer, Trainer)


def test_unknown_kind_and_duplicate_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TrainerError, match=r"'nope'.*classification"):
        get_trainer("nope")
    monkeypatch.setattr(base_module, "_TRAINERS", dict(base_module._TRAINERS))
    with pytest.raises(TrainerError, match="already registered"):
        register_trainer("classification")(ClassificationTrainer)


def test_mlp_learns_digits_and_reports_each_epoch(digits: Task) -> None:
    reports: list[dict] = []
    result = get_trainer("classification").fit(
        mlp(), digits, epochs=5, seed=0, lr=3e-3, report=reports.append
    )
    assert result.reward > 0.9
    assert not result.diverged
    assert result.reward == result.val_accuracy == max(r["val_accuracy"] for r in reports)
    assert result.test_accuracy is not None and result.test_accuracy > 0.85
    assert result.epochs == 5 and 1 <= result.best_epoch <= 5
    assert result.params == 64 * 64 + 64 + 64 * 10 + 10
    assert result.train_seconds > 0
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4, 5]
    assert all(set(r) == EPOCH_KEYS for r in reports)
    assert all(isinstance(r[k], float) for r in reports for k in EPOCH_KEYS - {"epoch"})
    assert result.history == reports
    assert all(t.device.type == "cpu" for t in result.state_dict.values())


def test_best_epoch_weights_are_restored(digits: Task) -> None:
    """Epoch 1 is best (the model breaks afterwards); its weights come back and score test."""
    model = Saboteur(after=batches_per_epoch(digits), mode="roll")
    result = ClassificationTrainer().fit(model, digits, epochs=3, seed=0, lr=3e-3)
    assert result.best_epoch == 1 and result.epochs == 3
    assert result.reward == result.history[0]["val_accuracy"] > 0.5
    assert all(h["val_accuracy"] < 0.3 for h in result.history[1:])
    # The trained model itself holds the best weights...
    for key, value in model.state_dict().items():
        assert torch.equal(value, result.state_dict[key])
    # ...and a fresh model loaded from the returned state dict reproduces the reported scores.
    fresh = Saboteur(after=batches_per_epoch(digits), mode="roll")
    fresh.load_state_dict(result.state_dict)
    assert accuracy(fresh, digits.x_test, digits.y_test) == pytest.approx(result.test_accuracy)
    assert accuracy(fresh, digits.x_val, digits.y_val) == pytest.approx(result.reward)


class Constant(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * self.value


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_loss_diverges_with_zero_reward(digits: Task, value: float) -> None:
    reports: list[dict] = []
    result = ClassificationTrainer().fit(
        Constant(value), digits, epochs=3, seed=0, report=reports.append
    )
    assert result.diverged and result.reward == 0.0
    assert result.epochs == 1 and result.best_epoch == 0
    assert result.test_accuracy is None and result.state_dict == {}
    assert reports == []


def test_divergence_after_good_epochs_keeps_best_weights(digits: Task) -> None:
    reports: list[dict] = []
    model = Saboteur(after=2 * batches_per_epoch(digits), mode="nan")
    result = ClassificationTrainer().fit(
        model, digits, epochs=5, seed=0, lr=3e-3, report=reports.append
    )
    assert result.diverged and result.reward == 0.0
    assert result.epochs == 3 and len(reports) == 2 and result.best_epoch in (1, 2)
    assert result.val_accuracy > 0.5  # recorded, but not the reward
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_same_init_and_seed_same_result(digits: Task) -> None:
    def run(seed: int):
        return ClassificationTrainer().fit(mlp(dropout=0.3), digits, epochs=2, seed=seed)

    a, b, c = run(0), run(0), run(1)
    assert a.history == b.history
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.history != c.history


def test_wrong_output_shape_and_wrong_kind_fail_loudly(digits: Task) -> None:
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(64, 7))
    with pytest.raises(ValueError, match=r"expected logits of shape \(64, 10\)"):
        ClassificationTrainer().fit(wrong, digits, epochs=1, seed=0)
    other = Task("toy", "forecasting", **{k: getattr(digits, k) for k in TASK_DATA})
    with pytest.raises(TrainerError, match="forecasting"):
        ClassificationTrainer().fit(mlp(), other, epochs=1, seed=0)


def test_lazy_modules_and_batch_norm_with_a_batch_of_one_left(digits: Task) -> None:
    lazy = nn.Sequential(nn.Flatten(), nn.LazyLinear(10))
    result = ClassificationTrainer().fit(lazy, digits, epochs=1, seed=0)
    assert result.params == 64 * 10 + 10
    assert len(digits.x_train) % 269 == 1  # the last batch would hold one sample
    bn = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.Linear(32, 10))
    assert not ClassificationTrainer().fit(bn, digits, epochs=1, seed=0, batch_size=269).diverged


def test_cpu_device_helpers() -> None:
    cpu = torch.device("cpu")
    assert pick_device("cpu") == cpu
    if not torch.cuda.is_available():
        assert pick_device() == cpu
    assert autocast_dtype(cpu) is None
    assert not grad_scaler(cpu).is_enabled()
    with autocast(cpu):
        assert not torch.is_autocast_enabled()
    before = torch.get_num_threads()
    try:
        assert configure_cpu_threads(0.5) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cuda_choices_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda", 0)
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype(cuda) == torch.float16
