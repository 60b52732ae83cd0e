"""Every registered trainer against the trainer contract (`trainers.base.Trainer`).

Parametrised over `list_trainers()` (as the controller suite is over controllers): on a tiny
task of its kind with a tiny model of a family it trains, ``fit`` returns a finite reward,
reports once per epoch, repeats itself under the same seed, keeps weights that load into a
fresh model, refuses what it does not support in one line, and does what its declared
capabilities say. A new trainer needs one `CASES` entry.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn

from spaces.ensemble import Ensemble
from spaces.families import build_model
from tests.examples import FAST_IMAGE_GAN, SMALL_CONV_VAE
from trainers import (
    Task,
    Trainer,
    TrainerError,
    TrainOptions,
    TrainResult,
    get_trainer,
    list_trainers,
    load_task,
)

EPOCHS = 2


def cut(name: str, train: int, other: int) -> Callable[[], Task]:
    """A loader of task ``name`` with at most ``train`` training and ``other`` validation and
    test examples (large enough for holdout validation)."""

    def load() -> Task:
        task = load_task(name, seed=0)
        splits = {
            "x_train": task.x_train[:train],
            "y_train": task.y_train[:train],
            **{
                f"{a}_{s}": getattr(task, f"{a}_{s}")[:other] for a in "xy" for s in ("val", "test")
            },
        }
        return dataclasses.replace(task, name=f"{name}-cut", lengths={}, **splits)

    return load


@dataclass(frozen=True)
class Case:
    """How to exercise one trainer: a tiny task and a tiny model it trains quickly."""

    task: Callable[[], Task]
    family: str
    architecture: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    """`TrainOptions` fields besides epochs and seed."""
    sequence_task: Callable[[], Task] | None = None
    """A task whose batches can be augmented, for trainers that augment."""


TINY_MLP = {"layers": [{"width": 16}]}
CASES = {
    "classification": Case(
        cut("digits", 300, 100),
        "mlp",
        TINY_MLP,
        {"lr": 3e-3},
        sequence_task=cut("uea:BasicMotions", 40, 40),
    ),
    "forecasting": Case(lambda: load_task("forecast:Lynx:3"), "mlp", TINY_MLP, {"lr": 1e-2}),
    "gan": Case(
        lambda: load_task("digits", seed=0),
        "gan",
        FAST_IMAGE_GAN,
        {"batch_size": 16},
    ),
    "vae": Case(
        cut("digits", 320, 160),
        "vae",
        SMALL_CONV_VAE,
        {"lr": 3e-3, "batch_size": 16},
    ),
}


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return {kind: case.task() for kind, case in CASES.items()}


def fresh_model(kind: str, task: Task) -> nn.Module:
    """The case's model, from the same initial weights every time."""
    case = CASES[kind]
    torch.manual_seed(0)
    return build_model(case.family, case.architecture, task.input_shape, task.num_outputs)


def options(kind: str, cache: str, **changes: Any) -> TrainOptions:
    """The case's options: `EPOCHS` epochs, seed 0, the reference cache ``cache`` where it is
    used."""
    reference = {"reference_dir": cache} if get_trainer(kind).uses_reference else {}
    return TrainOptions(
        **{"epochs": EPOCHS, "seed": 0, **reference, **CASES[kind].options, **changes}
    )


@pytest.fixture(scope="module")
def fitted(tasks, reference_dir) -> Callable[[str], list[tuple[TrainResult, list[dict]]]]:
    """Per trainer, lazily: two fits from the same weights and seed, and the reports of each."""
    done: dict[str, list[tuple[TrainResult, list[dict]]]] = {}

    def fit(kind: str) -> list[tuple[TrainResult, list[dict]]]:
        if kind not in done:
            runs = []
            for _ in range(2):
                reports: list[dict[str, Any]] = []
                model = fresh_model(kind, tasks[kind])
                result = get_trainer(kind).fit(
                    model, tasks[kind], options(kind, reference_dir), reports.append
                )
                runs.append((result, reports))
            done[kind] = runs
        return done[kind]

    return fit


def refused(trainer: Trainer, model: nn.Module, task: Task, opts: TrainOptions) -> str:
    """The one-line message ``fit`` refuses ``opts`` with (before any training)."""
    with pytest.raises(ValueError) as info:
        trainer.fit(model, task, opts)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_every_trainer_has_a_case() -> None:
    assert set(CASES) == set(list_trainers())


@pytest.mark.parametrize("kind", list_trainers())
def test_fit_reports_each_epoch_and_returns_a_finite_reward(kind, fitted) -> None:
    (result, reports), _ = fitted(kind)
    assert math.isfinite(result.reward) and result.reward > 0.0, result.failure
    assert not result.failure and not result.diverged
    assert result.metric == get_trainer(kind).reward_metrics[0]
    assert [r["epoch"] for r in reports] == list(range(1, EPOCHS + 1))
    assert result.epochs == EPOCHS and 1 <= result.best_epoch <= EPOCHS
    assert reports[-1]["reward"] == result.reward
    assert result.params > 0 and result.train_seconds > 0


@pytest.mark.parametrize("kind", list_trainers())
def test_same_seed_same_result(kind, fitted) -> None:
    (first, _), (again, _) = fitted(kind)
    assert first.history == again.history and first.metrics == again.metrics
    assert first.state_dict.keys() == again.state_dict.keys()
    assert all(torch.equal(first.state_dict[k], again.state_dict[k]) for k in first.state_dict)


@pytest.mark.parametrize("kind", list_trainers())
def test_the_kept_weights_load_into_a_fresh_model(kind, fitted, tasks) -> None:
    (result, _), _ = fitted(kind)
    task = tasks[kind]
    if result.ensemble:
        model: nn.Module = Ensemble(
            [fresh_model(kind, task) for _ in range(result.ensemble)], result.ensemble_combine
        )
    else:
        model = fresh_model(kind, task)
    model.load_state_dict(result.state_dict)  # strict: every key, every shape


@pytest.mark.parametrize("kind", list_trainers())
def test_unsupported_options_are_refused_in_one_line(kind, tasks, reference_dir) -> None:
    trainer, task = get_trainer(kind), tasks[kind]
    model = fresh_model(kind, task)
    message = refused(trainer, model, task, options(kind, reference_dir, metric="nosuch"))
    assert message.startswith("unknown metric 'nosuch'; known: ")
    if not trainer.supports_lr_schedule:
        schedule = options(kind, reference_dir, lr_schedule="cosine")
        assert "keeps its learning rate constant" in refused(trainer, model, task, schedule)
    if not trainer.supports_augment:
        augment = options(kind, reference_dir, augment=("jitter",))
        assert "does not augment" in refused(trainer, model, task, augment)
    elif len(task.input_shape) != 2:
        augment = options(kind, reference_dir, augment=("jitter",))
        assert "sequence classification" in refused(trainer, model, task, augment)
    if not trainer.uses_reference:
        reference = options(kind, reference_dir, reference_dir=reference_dir)
        assert "reference" in refused(trainer, model, task, reference)
    other = next(t for k, t in tasks.items() if t.kind != task.kind and k != kind)
    with pytest.raises(TrainerError) as info:
        trainer.fit(model, other, options(kind, reference_dir))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", list_trainers())
def test_every_reward_metric_is_accepted(kind, tasks, reference_dir) -> None:
    trainer, task = get_trainer(kind), tasks[kind]
    model = fresh_model(kind, task)
    for metric in trainer.reward_metrics:
        assert trainer.check(model, task, options(kind, reference_dir, metric=metric)) == metric
    assert trainer.check(model, task, options(kind, reference_dir)) == trainer.reward_metrics[0]


@pytest.mark.parametrize(
    "kind", [k for k in list_trainers() if get_trainer(k).supports_lr_schedule]
)
def test_a_declared_lr_schedule_is_followed(kind, tasks, reference_dir) -> None:
    task = tasks[kind]
    cosine = options(kind, reference_dir, lr_schedule="cosine", epochs=3)
    result = get_trainer(kind).fit(fresh_model(kind, task), task, cosine)
    lrs = [r["lr"] for r in result.history]
    assert lrs[0] == cosine.lr and lrs == sorted(lrs, reverse=True) and lrs[-1] < cosine.lr


@pytest.mark.parametrize("kind", [k for k in list_trainers() if get_trainer(k).supports_augment])
def test_declared_augmentation_changes_training(kind, reference_dir) -> None:
    make_task = CASES[kind].sequence_task
    assert make_task is not None, "a trainer that augments needs a sequence task in its case"
    task = make_task()

    def train_losses(augment: tuple[str, ...]) -> list[float]:
        opts = options(kind, reference_dir, augment=augment)
        result = get_trainer(kind).fit(fresh_model(kind, task), task, opts)
        return [r["train_loss"] for r in result.history]

    assert train_losses(()) != train_losses(("scale", "jitter"))


@pytest.mark.parametrize("kind", [k for k in list_trainers() if get_trainer(k).uses_reference])
def test_a_declared_reference_is_cached_where_asked(kind, fitted, reference_dir) -> None:
    fitted(kind)
    assert os.listdir(reference_dir)


@pytest.mark.parametrize("kind", [k for k in list_trainers() if get_trainer(k).ensemble_combine])
def test_a_declared_ensemble_combines_two_models(kind, tasks) -> None:
    task = tasks[kind]
    one, two = fresh_model(kind, task).eval(), fresh_model(kind, task).eval()
    both = Ensemble([one, two], get_trainer(kind).ensemble_combine).eval()
    with torch.no_grad():
        assert both(task.x_val[:4]).shape == one(task.x_val[:4]).shape
