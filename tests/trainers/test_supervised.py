from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from spaces.ensemble import Ensemble
from trainers import (
    ClassificationTrainer,
    Task,
    Trainer,
    TrainerError,
    TrainOptions,
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
from trainers.learning_rate import LearningRate
from trainers.supervised import MIN_EPOCH_SAMPLES, epoch_plan

EPOCH_KEYS = {
    "epoch",
    "lr",
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
        mlp(), digits, TrainOptions(epochs=5, seed=0, lr=3e-3), report=reports.append
    )
    assert result.reward > 0.9
    assert not result.diverged
    assert result.val_accuracy == max(r["val_accuracy"] for r in reports)
    # the reward is the accuracy less a validation-loss tie-breaker worth under half a sample
    assert result.val_accuracy - 0.5 / len(digits.y_val) < result.reward < result.val_accuracy
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
    result = ClassificationTrainer().fit(model, digits, TrainOptions(epochs=3, seed=0, lr=3e-3))
    assert result.best_epoch == 1 and result.epochs == 3
    assert result.val_accuracy == result.history[0]["val_accuracy"] > 0.5
    assert all(h["val_accuracy"] < 0.3 for h in result.history[1:])
    # The trained model itself holds the best weights...
    for key, value in model.state_dict().items():
        assert torch.equal(value, result.state_dict[key])
    # ...and a fresh model loaded from the returned state dict reproduces the reported scores.
    fresh = Saboteur(after=batches_per_epoch(digits), mode="roll")
    fresh.load_state_dict(result.state_dict)
    assert accuracy(fresh, digits.x_test, digits.y_test) == pytest.approx(result.test_accuracy)
    assert accuracy(fresh, digits.x_val, digits.y_val) == pytest.approx(result.val_accuracy)


def digits_subset(digits: Task, train: int, val: int | None = None) -> Task:
    """Digits with the first `train` training images and `val` validation images (all if
    None); the test split whole."""
    return Task(
        "subset",
        "classification",
        digits.input_shape,
        10,
        digits.x_train[:train],
        digits.y_train[:train],
        digits.x_val[:val],
        digits.y_val[:val],
        digits.x_test,
        digits.y_test,
    )


def test_tiny_training_splits_get_enough_steps_per_epoch(digits: Task) -> None:
    assert epoch_plan(len(digits.x_train), 64) == (64, 1)  # digits trains as before
    batch, passes = epoch_plan(40, 64)  # a UCR-sized split: batch capped, many passes
    assert batch == 10 and passes * 40 >= MIN_EPOCH_SAMPLES
    tiny = digits_subset(digits, train=40)
    model = Saboteur(after=10**9, mode="roll")
    result = ClassificationTrainer().fit(model, tiny, TrainOptions(epochs=2, seed=0, batch_size=64))
    assert model.steps == result.best_epoch * passes * 4 and result.epochs == 2  # restored


def test_validation_loss_breaks_accuracy_ties(digits: Task) -> None:
    trainer = ClassificationTrainer()
    confident = trainer.reward({"loss": 0.1, "accuracy": 1.0}, digits, "accuracy")
    unsure = trainer.reward({"loss": 0.6, "accuracy": 1.0}, digits, "accuracy")
    one_wrong = trainer.reward({"loss": 0.0, "accuracy": 1.0 - 1 / 360}, digits, "accuracy")
    hopeless = trainer.reward({"loss": 1e9, "accuracy": 1.0}, digits, "accuracy")
    assert 1.0 > confident > unsure > hopeless > one_wrong


class LengthSpy(nn.Module):
    """Records the lengths its forward is given alongside each batch."""

    def __init__(self, steps: int, channels: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(steps * channels, classes)
        self.seen: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        assert lengths is not None and lengths.shape == (len(x),)
        self.seen.append((len(x), int(lengths.max())))
        return self.linear(x.flatten(1))


def test_padded_tasks_give_the_model_the_true_lengths() -> None:
    task = load_task("uea:JapaneseVowels", seed=0)
    assert task.lengths
    steps, channels = task.input_shape
    spy = LengthSpy(steps, channels, task.num_classes)
    result = ClassificationTrainer().fit(spy, task, TrainOptions(epochs=1, seed=0))
    assert not result.diverged and spy.seen
    assert max(n for _, n in spy.seen) <= steps
    # cross-validated, the kept ensemble hands each member the lengths too (the spy asserts it)
    trainer = ClassificationTrainer()
    trainer.cv_max_samples = len(task.y_train) + len(task.y_val)
    spy = LengthSpy(steps, channels, task.num_classes)
    result = trainer.fit(spy, task, TrainOptions(epochs=1, seed=0))
    assert result.ensemble == 6 and 0.0 <= result.test_accuracy <= 1.0
    # a model whose forward takes no lengths still trains on the padded inputs
    plain = nn.Sequential(nn.Flatten(), nn.Linear(steps * channels, task.num_classes))
    assert not ClassificationTrainer().fit(plain, task, TrainOptions(epochs=1, seed=0)).diverged


def small_task(digits: Task) -> Task:
    """160 labelled digits (120 train + 40 validation): small enough to be cross-validated."""
    return digits_subset(digits, train=120, val=40)


def kept_model(result, build=mlp) -> nn.Module:
    """The model a result's state dict describes: an `Ensemble` of ``build()`` copies or one."""
    model = Ensemble([build() for _ in range(result.ensemble)]) if result.ensemble else build()
    model.load_state_dict(result.state_dict)
    return model.eval()


def test_small_tasks_are_cross_validated_refitted_and_ensembled(digits: Task) -> None:
    small = small_task(digits)
    trainer = ClassificationTrainer()
    assert trainer.folds(digits, 0) == []  # large enough for holdout
    folds = trainer.folds(small, 0)
    assert len(folds) == 5
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(160))
    reports: list[dict] = []
    model = mlp()
    result = trainer.fit(
        model, small, TrainOptions(epochs=3, seed=0, lr=3e-3), report=reports.append
    )
    assert trainer.validation_size == 160 and not result.diverged
    # pooled out-of-fold accuracy: a multiple of 1/160
    assert result.val_accuracy * 160 == pytest.approx(round(result.val_accuracy * 160))
    assert result.val_accuracy == max(r["val_accuracy"] for r in reports) > 0.5
    assert result.metrics["refit"] == 1.0
    # the kept model averages the refit (the model passed in) and the five fold models
    assert result.ensemble == result.metrics["ensemble"] == 6
    kept = kept_model(result)
    for key, value in model.state_dict().items():
        assert torch.equal(value, kept.members[0].state_dict()[key])
    assert result.params == sum(p.numel() for p in model.parameters())  # the architecture's
    tested = accuracy(kept, digits.x_test, digits.y_test)
    assert tested == pytest.approx(result.test_accuracy)
    members = [accuracy(m, digits.x_test, digits.y_test) for m in kept.members]
    assert len({round(a, 6) for a in members}) > 1  # trained apart, not six copies of one
    assert tested >= np.median(members)
    # without the fold models, the refit alone is kept
    trainer.fold_ensemble = False
    single = trainer.fit(mlp(), small, TrainOptions(epochs=3, seed=0, lr=3e-3))
    assert single.ensemble == single.metrics["ensemble"] == 0
    assert single.test_accuracy == pytest.approx(members[0])
    trainer.cv_folds = 0
    assert trainer.folds(small, 0) == []


def test_training_as_published_uses_every_labelled_series_and_the_lowest_training_loss(
    digits: Task,
) -> None:
    # digits 0-4 only in the training split, 5-9 only in validation: a model that never saw
    # the validation split could not name a 5
    low, high = digits.y_train < 5, digits.y_val >= 5
    split = Task(
        "split classes",
        "classification",
        digits.input_shape,
        10,
        digits.x_train[low],
        digits.y_train[low],
        digits.x_val[high],
        digits.y_val[high],
        digits.x_test,
        digits.y_test,
    )
    trainer = ClassificationTrainer()
    model = mlp()
    test = trainer.train_as_published(model, split, TrainOptions(epochs=4, seed=0, lr=3e-3))
    assert not model.training
    assert test["test_accuracy"] == pytest.approx(accuracy(model, digits.x_test, digits.y_test))
    assert test["test_accuracy"] > 0.75
    upper = digits.y_test >= 5
    assert accuracy(model, digits.x_test[upper], digits.y_test[upper]) > 0.7
    # a training loss that only grows after the first epoch: the first epoch's weights are kept
    steps = math.ceil((len(digits.x_train) + len(digits.x_val)) / 64)
    saboteur = Saboteur(after=steps, mode="nan")
    trainer.train_as_published(saboteur, digits, TrainOptions(epochs=3, seed=0))
    assert saboteur.steps.item() == steps


class StalledRefit(ClassificationTrainer):
    """A refit that never trains: the model stays at its initial weights (chance accuracy)."""

    def _refit(self, member, task, options, epochs):
        return {k: v.detach().clone() for k, v in member.model.state_dict().items()}


def test_a_failed_refit_is_left_out(digits: Task) -> None:
    small = small_task(digits)
    model = mlp()
    result = StalledRefit().fit(model, small, TrainOptions(epochs=3, seed=0, lr=3e-3))
    assert result.metrics["refit"] == 0.0 and result.val_accuracy > 0.5
    # the ensemble is the five trained fold models, without the untrained initial weights
    assert result.ensemble == 5
    kept = kept_model(result)
    held = model.state_dict()  # the model passed in holds the best fold model's weights
    assert any(
        all(torch.equal(v, m.state_dict()[k]) for k, v in held.items()) for m in kept.members
    )
    assert accuracy(kept, digits.x_test, digits.y_test) == pytest.approx(result.test_accuracy)
    assert result.test_accuracy > 0.5 > accuracy(mlp(), digits.x_test, digits.y_test)
    # kept alone, the best fold's model stands in for the refit
    stalled = StalledRefit()
    stalled.fold_ensemble = False
    model = mlp()
    single = stalled.fit(model, small, TrainOptions(epochs=3, seed=0, lr=3e-3))
    assert single.ensemble == 0 and single.metrics["refit"] == 0.0
    assert accuracy(model, digits.x_test, digits.y_test) == pytest.approx(single.test_accuracy)
    assert single.test_accuracy > 0.5


def test_an_ensemble_averages_probabilities_or_outputs() -> None:
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    x = torch.randn(5, 3)
    both = Ensemble([a, b])
    expected = (a(x).softmax(1) + b(x).softmax(1)) / 2
    with torch.no_grad():
        assert torch.allclose(both(x).exp(), expected, atol=1e-6)
        assert torch.allclose(Ensemble([a, b], "mean")(x), (a(x) + b(x)) / 2)
        # log-probabilities are valid logits: cross-entropy and argmax see the averaged ones
        assert torch.allclose(torch.log_softmax(both(x), 1), both(x), atol=1e-6)
    with pytest.raises(ValueError, match="unknown combine 'vote'; known: probabilities, mean"):
        Ensemble([a], "vote")
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])


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
        Constant(value), digits, TrainOptions(epochs=3, seed=0), report=reports.append
    )
    assert result.diverged and result.reward == 0.0
    assert result.epochs == 1 and result.best_epoch == 0
    assert result.test_accuracy is None and result.state_dict == {}
    assert reports == []


def test_divergence_after_good_epochs_keeps_best_weights(digits: Task) -> None:
    reports: list[dict] = []
    model = Saboteur(after=2 * batches_per_epoch(digits), mode="nan")
    result = ClassificationTrainer().fit(
        model, digits, TrainOptions(epochs=5, seed=0, lr=3e-3), report=reports.append
    )
    assert result.diverged and result.reward == 0.0
    assert result.epochs == 3 and len(reports) == 2 and result.best_epoch in (1, 2)
    assert result.val_accuracy > 0.5  # recorded, but not the reward
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_cosine_schedule_decays_the_learning_rate_each_epoch(digits: Task) -> None:
    options = TrainOptions(epochs=4, seed=0, lr=4e-3, lr_schedule="cosine")
    cosine = ClassificationTrainer().fit(mlp(), digits, options)
    constant = ClassificationTrainer().fit(mlp(), digits, TrainOptions(epochs=4, seed=0, lr=4e-3))
    expected = [4e-3 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert [r["lr"] for r in cosine.history] == pytest.approx(expected)
    assert [r["lr"] for r in constant.history] == [4e-3] * 4
    # the optimiser follows it: the first epoch trains alike, the later ones do not
    assert cosine.history[0]["train_loss"] == constant.history[0]["train_loss"]
    assert cosine.history[2]["train_loss"] != constant.history[2]["train_loss"]
    with pytest.raises(ValueError, match=r"unknown lr_schedule 'warmup'; known: constant, cos"):
        TrainOptions(epochs=1, seed=0, lr_schedule="warmup")


def test_plateau_schedule_follows_the_training_loss(digits: Task) -> None:
    """A learning rate too high to keep improving: it is halved after each epoch without a
    better training loss (patience 1 of 8 epochs), and the optimiser trains with it."""
    options = TrainOptions(epochs=8, seed=0, lr=1.0, lr_schedule="plateau")
    result = ClassificationTrainer().fit(mlp(), digits, options)
    replay = LearningRate(options)
    for record in result.history:
        assert record["lr"] == replay.at(record["epoch"])
        replay.after(record["train_loss"])
    rates = [r["lr"] for r in result.history]
    assert rates[0] == 1.0 and min(rates) < 1.0  # it did reduce


def test_same_init_and_seed_same_result(digits: Task) -> None:
    def run(seed: int):
        return ClassificationTrainer().fit(
            mlp(dropout=0.3), digits, TrainOptions(epochs=2, seed=seed)
        )

    a, b, c = run(0), run(0), run(1)
    assert a.history == b.history
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert a.history != c.history


def test_wrong_output_shape_and_wrong_kind_fail_loudly(digits: Task) -> None:
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(64, 7))
    with pytest.raises(ValueError, match=r"expected logits of shape \(64, 10\)"):
        ClassificationTrainer().fit(wrong, digits, TrainOptions(epochs=1, seed=0))
    other = Task("toy", "forecasting", **{k: getattr(digits, k) for k in TASK_DATA})
    with pytest.raises(TrainerError, match="forecasting"):
        ClassificationTrainer().fit(mlp(), other, TrainOptions(epochs=1, seed=0))


def test_lazy_modules_and_batch_norm_with_a_batch_of_one_left(digits: Task) -> None:
    lazy = nn.Sequential(nn.Flatten(), nn.LazyLinear(10))
    result = ClassificationTrainer().fit(lazy, digits, TrainOptions(epochs=1, seed=0))
    assert result.params == 64 * 10 + 10
    assert len(digits.x_train) % 269 == 1  # the last batch would hold one sample
    bn = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.Linear(32, 10))
    assert (
        not ClassificationTrainer()
        .fit(bn, digits, TrainOptions(epochs=1, seed=0, batch_size=269))
        .diverged
    )


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
