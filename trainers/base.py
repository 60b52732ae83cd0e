"""The trainer protocol, its result, and the registry of trainers by task kind.

A trainer knows nothing of the model it trains (as in minGPT): it takes a built ``nn.Module``
and a `Task`, reports metrics per epoch through a callback, and returns a `TrainResult` whose
reward comes from validation data only.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from spaces.families import count_parameters
from trainers.tasks import Task

__all__ = [
    "ReportFn",
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
    """An unknown task kind, or a duplicate trainer registration."""


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
    """Trains a built model on a task of one kind and scores it on validation data."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def fit(
        self,
        model: nn.Module,
        task: Task,
        *,
        epochs: int,
        seed: int,
        device: str | torch.device | None = None,
        report: ReportFn | None = None,
    ) -> TrainResult:
        """Train ``model`` in place on ``task`` and return the result."""


def register_trainer(kind: str) -> Callable[[type[TrainerT]], type[TrainerT]]:
    """Class decorator: register a `Trainer` subclass for tasks of ``kind``.

    Registering a kind twice raises `TrainerError`.
    """

    def decorator(cls: type[TrainerT]) -> type[TrainerT]:
        if kind in _TRAINERS:
            raise TrainerError(f"a trainer for kind {kind!r} is already registered")
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
