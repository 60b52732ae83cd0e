"""The trainer protocol, its result, and the registry of trainers by task kind.

A trainer knows nothing of the model it trains (as in minGPT): it takes a built ``nn.Module``,
a `Task` and `TrainOptions`, reports metrics per epoch through a callback, and returns a
`TrainResult` whose reward comes from validation data only. What a trainer can do is declared
on its class (`Trainer.reward_metrics`, `uses_reference`, `supports_lr_schedule`,
`supports_augment`, `ensemble_combine`); `Trainer.fit` refuses options it does not support.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from spaces.families import count_parameters
from trainers.augment import check_augmentable
from trainers.options import TrainOptions
from trainers.tasks import Task

__all__ = [
    "ReportFn",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "TrainerError",
    "count_parameters",
    "get_trainer",
    "list_trainers",
    "register_trainer",
]

ReportFn = Callable[[dict[str, Any]], None]
"""Called once per epoch with that epoch's metrics (e.g. ``epoch``, ``train_loss``...)."""

_TRAINERS: dict[str, type[Trainer]] = {}

TrainerT = TypeVar("TrainerT", bound="Trainer")


class TrainerError(ValueError):
    """An unknown task kind, a duplicate trainer registration, or a model, task or option the
    trainer cannot train with."""


@dataclass
class TrainResult:
    """What training one child produced.

    Attributes:
        reward: The search's reward: the best validation value of ``metric`` (accuracy by
            default), 0.0 if training diverged. Never computed from test data.
        val_accuracy: Validation accuracy of the best epoch (by ``metric``); for
            classification only (0.0 for other kinds).
        test_accuracy: Test accuracy of the restored best-epoch weights; None if diverged or
            not a classification task.
        best_epoch: Epoch (1-based) whose weights were kept; 0 if no epoch finished.
        epochs: Epochs actually run (fewer than asked when training diverged).
        params: Number of trainable parameters of the architecture (of one network; an
            ensemble holds ``ensemble`` of them).
        train_seconds: Wall-clock seconds spent in ``fit``.
        history: One dict of metrics per epoch run.
        state_dict: The kept weights, as CPU tensors.
        diverged: True when a loss became NaN or infinite and training stopped early.
        metrics: Final scalar metrics, ``val_<name>`` of the best epoch and ``test_<name>``
            of the kept weights (e.g. ``val_uar``, ``test_macro_f1``; ``test_*`` absent if
            diverged).
        metric: The validation metric the reward is made of.
        failure: Why training ended early with a penalised reward (``"diverged: ..."``,
            ``"mode collapse: ..."``); empty when it ran its course.
        artifacts: Files to record with the child, by relative path (e.g.
            ``"samples/epoch-010.png"`` -> PNG bytes).
        ensemble: Number of members when the kept model is an `spaces.ensemble.Ensemble` of
            copies of the architecture (``state_dict`` is then the ensemble's); 0 for one model.
        ensemble_combine: How that ensemble combines its members (``Ensemble.combine``).
    """

    reward: float
    val_accuracy: float
    test_accuracy: float | None
    best_epoch: int
    epochs: int
    params: int
    train_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    diverged: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    metric: str = "accuracy"
    failure: str = ""
    artifacts: dict[str, bytes] = field(default_factory=dict, repr=False)
    ensemble: int = 0
    ensemble_combine: str = ""


class Trainer(abc.ABC):
    """Trains a built model on a task of one kind and scores it on validation data.

    Subclasses declare their capabilities as class variables and implement `train`; `fit`
    checks the options against them first.
    """

    kind: ClassVar[str]
    reward_metrics: ClassVar[tuple[str, ...]] = ()
    """Values ``TrainOptions.metric`` may take; the first is the default. Required."""
    lower_is_better: ClassVar[frozenset[str]] = frozenset()
    """Reported metrics (names without ``val_``/``test_``) of which less is better, e.g.
    ``rmse``; the rest are better higher. Pictures orient their axes by it."""
    uses_reference: ClassVar[bool] = False
    """Scores samples with the task's reference classifier (cached in
    ``TrainOptions.reference_dir``)."""
    supports_lr_schedule: ClassVar[bool] = False
    """Follows ``TrainOptions.lr_schedule``; otherwise its learning rate stays constant."""
    supports_augment: ClassVar[bool] = False
    """Augments training batches of sequence tasks (``TrainOptions.augment``)."""
    ensemble_combine: ClassVar[str] = ""
    """How an `spaces.ensemble.Ensemble` of this trainer's models combines them
    (`spaces.ensemble.COMBINES`); empty: its models are never averaged."""

    def fit(
        self,
        model: nn.Module,
        task: Task,
        options: TrainOptions,
        report: ReportFn | None = None,
    ) -> TrainResult:
        """Train ``model`` in place on ``task`` and return the result.

        Raises:
            ValueError: A metric the trainer cannot reward.
            TrainerError: A model or task it cannot train, or an option it does not support.
        """
        metric = self.check(model, task, options)
        return self.train(model, task, options, metric, report)

    def check(self, model: nn.Module, task: Task, options: TrainOptions) -> str:
        """The reward metric ``options`` ask for, once the model, task and options are known to
        suit this trainer; raises (one line) otherwise."""
        metric = self.reward_metrics[0] if options.metric is None else options.metric
        if metric not in self.reward_metrics:
            known = ", ".join(self.reward_metrics)
            raise ValueError(f"unknown metric {metric!r}; known: {known}")
        self.check_task(model, task)
        if options.lr_schedule != "constant" and not self.supports_lr_schedule:
            raise TrainerError(
                f"lr_schedule {options.lr_schedule!r}: the {self.kind} trainer keeps its "
                "learning rate constant"
            )
        if options.augment and not self.supports_augment:
            raise TrainerError(
                f"augmentation ({', '.join(options.augment)}): the {self.kind} trainer does "
                "not augment"
            )
        if options.reference_dir is not None and not self.uses_reference:
            raise TrainerError(
                f"reference_dir: the {self.kind} trainer scores no samples with a reference "
                "classifier"
            )
        try:
            check_augmentable(task, options.augment)
        except ValueError as exc:
            raise TrainerError(str(exc)) from None
        return metric

    def check_task(self, model: nn.Module, task: Task) -> None:
        """Raise `TrainerError` unless this trainer can train ``model`` on ``task``: by
        default, a task of its `kind`."""
        if task.kind != self.kind:
            raise TrainerError(
                f"{type(self).__name__} trains {self.kind!r} tasks, "
                f"task {task.name!r} is {task.kind!r}"
            )

    @abc.abstractmethod
    def train(
        self,
        model: nn.Module,
        task: Task,
        options: TrainOptions,
        metric: str,
        report: ReportFn | None,
    ) -> TrainResult:
        """`fit` once the options are checked; ``metric`` is the reward metric they name."""


def register_trainer(kind: str) -> Callable[[type[TrainerT]], type[TrainerT]]:
    """Class decorator: register a `Trainer` subclass for tasks of ``kind``.

    Registering a kind twice, or a trainer without `Trainer.reward_metrics`, raises
    `TrainerError`.
    """

    def decorator(cls: type[TrainerT]) -> type[TrainerT]:
        if kind in _TRAINERS:
            raise TrainerError(f"a trainer for kind {kind!r} is already registered")
        if not cls.reward_metrics:
            raise TrainerError(f"{cls.__name__} declares no reward_metrics")
        cls.kind = kind
        _TRAINERS[kind] = cls
        return cls

    return decorator


def list_trainers() -> list[str]:
    """Task kinds that have a registered trainer, sorted."""
    return sorted(_TRAINERS)


def get_trainer(kind: str) -> Trainer:
    """A new trainer for tasks of ``kind``.

    Raises:
        TrainerError: If no trainer is registered for that kind.
    """
    if kind not in _TRAINERS:
        known = ", ".join(list_trainers()) or "none"
        raise TrainerError(f"no trainer for task kind {kind!r}; known kinds: {known}")
    return _TRAINERS[kind]()
