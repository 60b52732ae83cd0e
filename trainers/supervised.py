"""The supervised training loop shared by the classification and forecasting trainers.

Like minGPT's trainer it knows nothing of the model: it moves the task's tensors to the device
whole, draws batches with a seeded permutation (no DataLoader), trains with Adam and a grad
scaler under autocast, keeps the weights of the best validation epoch, restores them at the end,
and only then evaluates the test split, for reporting. A subclass says what a batch's loss is,
how a split is evaluated, and how validation metrics make the reward.

Tiny training splits (the UCR archives hold tens of series) would get one optimiser step per
epoch at the usual batch sizes. So the batch is capped at ``1 / MIN_BATCHES`` of the training
split, and an epoch is as many passes over it as reach ``MIN_EPOCH_SAMPLES`` samples. A split
of at least ``MIN_EPOCH_SAMPLES`` samples with ``batch_size <= len / MIN_BATCHES`` trains
exactly as one plain pass per epoch.

A subclass may cross-validate small tasks (`folds`): then one copy of the model trains per fold
of train + validation, in step, and each epoch's validation metrics are the folds' pooled
values, so the best epoch and the reward rest on every labelled series instead of a handful.
The initial model is then refitted on train + validation for the best epoch count (as
``GridSearchCV(refit=True)`` does), and the kept model is an `Ensemble` of the refit and the
fold models at the best epoch (as InceptionTime averages five networks), for a trainer with an
`ensemble_combine`: should the refit fail, the child still rests on every fold, not on one. A
refit that fits its own training data worse than the folds' models predicted their held-out
series (by more than ``REFIT_TOLERANCE``: an unlucky start that never took off) is left out;
the ``refit`` metric says whether it was kept (1 or 0), ``ensemble`` counts the members. The test
split still only reports the kept model.

With `augment` set (sequence classification only), every training batch of every member passes
through a seeded `trainers.augment.Augmenter` first; evaluation never does.
"""

from __future__ import annotations

import abc
import copy
import inspect
import math
import time
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from spaces.ensemble import Ensemble
from trainers.augment import Augmenter, check_augmentable, parse_augmentations
from trainers.base import ReportFn, Trainer, TrainerError, TrainResult, count_parameters
from trainers.device import autocast, grad_scaler, pick_device, seed_everything
from trainers.tasks import Task

__all__ = [
    "MIN_BATCHES",
    "MIN_EPOCH_SAMPLES",
    "REFIT_TOLERANCE",
    "SupervisedTrainer",
    "epoch_plan",
    "forward",
    "split_lengths",
]

MIN_EPOCH_SAMPLES = 1024
"""An epoch shows the model at least this many training samples (whole passes)."""
MIN_BATCHES = 4
"""A pass over the training split makes at least this many optimiser steps."""
LR_SCHEDULES = ("constant", "cosine")
"""Values of `SupervisedTrainer.lr_schedule`."""
REFIT_TOLERANCE = 0.02
"""A refit whose reward on its own training data (train + validation) is more than this below
the cross-validated reward failed to fit and is left out: the kept model is then the fold
models' ensemble (with `ensemble_combine` and `fold_ensemble`), else the best fold's model."""


def epoch_plan(samples: int, batch_size: int) -> tuple[int, int]:
    """``(batch, passes)``: the batch size used and the passes over ``samples`` per epoch."""
    batch = max(1, min(batch_size, math.ceil(samples / MIN_BATCHES)))
    passes = max(1, math.ceil(MIN_EPOCH_SAMPLES / max(samples, 1)))
    return batch, passes


class SupervisedTrainer(Trainer):
    """Adam on a per-batch loss; the reward is the best validation value of a metric.

    Subclasses set `metrics` and `reward_metrics` and implement `loss`, `evaluate` and `reward`.
    """

    metrics: ClassVar[tuple[str, ...]]
    """Names `evaluate` returns besides ``loss``: ``TrainResult.metrics`` has ``val_``/``test_``
    of each."""
    reward_metrics: ClassVar[tuple[str, ...]]
    """Values ``fit(metric=...)`` accepts; the first is the default."""
    lr_schedule: str = "constant"
    """``constant``, or ``cosine``: the learning rate decays per epoch from ``lr`` towards 0."""
    validation_size: int = 0
    """Validation samples behind the current selection (all folds' when cross-validating)."""
    skipped_metrics: ClassVar[tuple[str, ...]] = ()
    """Metrics recorded as NaN for an epoch whose training loss diverged (validation skipped)."""
    ensemble_combine: ClassVar[str] = ""
    """How an `Ensemble` of this trainer's models combines them (`spaces.ensemble.COMBINES`):
    a cross-validated child's fold models, or a search's trainings of one architecture; empty:
    its models are never averaged."""
    fold_ensemble: bool = True
    """When cross-validating, keep the fold models beside the refit as one `Ensemble`."""
    augment: tuple[str, ...] = ()
    """Augmentations of training batches (`trainers.augment.AUGMENTATIONS`), for sequence
    classification only; empty: none."""

    def fit(
        self,
        model: nn.Module,
        task: Task,
        *,
        epochs: int,
        seed: int,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        metric: str | None = None,
        report: ReportFn | None = None,
    ) -> TrainResult:
        """Train ``model`` in place and return its best-validation result.

        Args:
            model: A built model; it is moved to the device, trained, and left holding the
                best epoch's weights, in eval mode (when cross-validating: the refit's, or
                the best fold model's if the refit failed; the result's ``state_dict`` is
                then the kept `Ensemble`'s when ``result.ensemble`` says so).
            task: A task of this trainer's kind.
            epochs: Number of epochs: one pass over the training split, or several for a
                split under `MIN_EPOCH_SAMPLES` samples (see `epoch_plan`).
            seed: Seeds Python, NumPy and torch, and the batch order.
            device: Where to train; default: `pick_device()`.
            batch_size: Training batch size, capped at ``1 / MIN_BATCHES`` of the split.
            lr: Adam learning rate.
            weight_decay: Adam weight decay.
            metric: The validation metric the reward is made of: one of `reward_metrics`.
            report: Called after every epoch with ``epoch`` (1-based), ``train_loss``,
                ``val_loss``, ``val_<metric>`` of each of `metrics` and ``reward`` (best so
                far). Not called for an epoch that diverged.

        Returns:
            The result; its reward is the best validation `reward`, or 0.0 if a loss became
            NaN or infinite (then ``diverged`` is True and training stopped at that epoch).
            ``metrics`` holds ``val_*`` (best epoch; pooled over folds when cross-validating)
            and ``test_*`` values of `metrics`.
        """
        metric = self.reward_metrics[0] if metric is None else metric
        if metric not in self.reward_metrics:
            known = ", ".join(self.reward_metrics)
            raise ValueError(f"unknown metric {metric!r}; known: {known}")
        if self.lr_schedule not in LR_SCHEDULES:
            known = ", ".join(LR_SCHEDULES)
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; known: {known}")
        if task.kind != self.kind:
            raise TrainerError(
                f"{type(self).__name__} trains {self.kind!r} tasks, "
                f"task {task.name!r} is {task.kind!r}"
            )
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
        self._check_augment(task)
        start = time.perf_counter()
        seed_everything(seed)
        dev = pick_device(device)
        model.to(dev)
        x_train, y_train = task.x_train.to(dev), task.y_train.to(dev)
        x_val, y_val = task.x_val.to(dev), task.y_val.to(dev)
        _materialize_lazy(model, x_train[:2])
        lengths = split_lengths(model, task, dev)
        folds = self.folds(task, seed)
        pool = _Split(
            torch.cat([x_train, x_val]),
            torch.cat([y_train, y_val]),
            torch.cat([lengths["train"], lengths["val"]]) if lengths else None,
        )
        initial = copy.deepcopy(model) if folds else None
        if folds:
            members = [
                _Member(copy.deepcopy(initial), pool.take(tr), pool.take(va), seed + i)
                for i, (tr, va) in enumerate(folds)
            ]
        else:
            train = _Split(x_train, y_train, lengths.get("train"))
            members = [_Member(model, train, _Split(x_val, y_val, lengths.get("val")), seed)]
        self.validation_size = sum(len(m.val.y) for m in members)
        for member in members:
            member.start(lr, weight_decay, dev, batch_size, self.augment)

        history: list[dict[str, Any]] = []
        best_value, best_epoch, best_state = 0.0, 0, None
        best_val: dict[str, float] = {}
        diverged = False
        for epoch in range(1, epochs + 1):
            train_losses, vals = [], []
            for member in members:
                train_losses.append(self._member_epoch(member, task, lr, epoch, epochs))
                val = {"loss": math.nan, **dict.fromkeys(self.skipped_metrics, math.nan)}
                if math.isfinite(train_losses[-1]):
                    val = self._evaluate(member.model, task, *member.val)
                vals.append(val)
                if not (math.isfinite(train_losses[-1]) and math.isfinite(val["loss"])):
                    break
            train_loss, val = _pooled(members, train_losses, vals)
            record = {"epoch": epoch, "lr": self.epoch_lr(lr, epoch, epochs)}
            record["train_loss"] = train_loss
            record.update({f"val_{k}": v for k, v in val.items()})
            if not (math.isfinite(train_loss) and math.isfinite(val["loss"])):
                history.append(record)
                diverged = True
                break
            value = self.reward(val, task, metric)
            if best_epoch == 0 or value > best_value:
                best_value, best_epoch, best_val = value, epoch, dict(val)
                if not folds:
                    best_state = _cpu_state(model)
                else:  # ensemble members, and the fallback should the refit fail (below)
                    fold_states = [_cpu_state(m.model) for m in members]
                    fold_values = [self.reward(v, task, metric) for v in vals]
            record["reward"] = best_value
            history.append(record)
            if report is not None:
                report(dict(record))

        metrics = {f"val_{k}": best_val.get(k, math.nan) for k in self.metrics}
        kept = model
        if folds and not diverged:
            model.load_state_dict(initial.state_dict())
            refit = _Member(model, pool, pool, seed)
            refit.start(lr, weight_decay, dev, batch_size, self.augment)
            refit_state = self._refit(refit, task, lr, best_epoch, epochs)
            fit = self._evaluate(model, task, *pool)
            refitted = math.isfinite(fit["loss"]) and (
                self.reward(fit, task, metric) >= best_value - REFIT_TOLERANCE
            )
            metrics["refit"] = float(refitted)
            best_state = refit_state if refitted else fold_states[int(np.argmax(fold_values))]
            states = [refit_state] if refitted else []
            if self.ensemble_combine and self.fold_ensemble:
                states += fold_states
            if len(states) > 1:
                kept = _ensemble(model, states, self.ensemble_combine).to(dev)
            metrics["ensemble"] = float(len(states) if len(states) > 1 else 0)
        if best_state is not None:
            model.load_state_dict(best_state)
        if kept is not model:
            best_state = _cpu_state(kept)
        if not diverged:
            x_test, y_test = task.x_test.to(dev), task.y_test.to(dev)
            test = self._evaluate(kept, task, x_test, y_test, lengths.get("test"))
            metrics.update({f"test_{k}": test[k] for k in self.metrics})
        model.eval()
        kept.eval()
        return TrainResult(
            reward=0.0 if diverged else best_value,
            val_accuracy=metrics.get("val_accuracy", 0.0) if best_val else 0.0,
            test_accuracy=metrics.get("test_accuracy"),
            best_epoch=best_epoch,
            epochs=len(history),
            params=count_parameters(model),
            train_seconds=time.perf_counter() - start,
            history=history,
            state_dict=best_state or {},
            diverged=diverged,
            metrics=metrics,
            metric=metric,
            ensemble=len(kept.members) if isinstance(kept, Ensemble) else 0,
            ensemble_combine=kept.combine if isinstance(kept, Ensemble) else "",
        )

    def _refit(
        self, member: _Member, task: Task, lr: float, epochs: int, schedule_epochs: int
    ) -> dict[str, torch.Tensor]:
        """Train the refit `member` (the initial weights, all of train + validation) for the
        cross-validated best `epochs` of a schedule over `schedule_epochs`; returns its weights."""
        for epoch in range(1, epochs + 1):
            self._member_epoch(member, task, lr, epoch, schedule_epochs)
        return _cpu_state(member.model)

    def _check_augment(self, task: Task) -> None:
        try:
            self.augment = parse_augmentations(self.augment)
            check_augmentable(task, self.augment)
        except ValueError as exc:
            raise TrainerError(str(exc)) from None

    def folds(self, task: Task, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Cross-validation folds over train + validation (indices into their concatenation),
        or none: holdout validation. Subclasses that cross-validate small tasks override it."""
        return []

    def epoch_lr(self, lr: float, epoch: int, epochs: int) -> float:
        """The learning rate of epoch ``epoch`` (1-based) of ``epochs`` under `lr_schedule`."""
        if self.lr_schedule == "cosine":
            return lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
        return lr

    def _member_epoch(
        self, member: _Member, task: Task, lr: float, epoch: int, epochs: int
    ) -> float:
        for group in member.optimizer.param_groups:
            group["lr"] = self.epoch_lr(lr, epoch, epochs)
        member.model.train()
        return self._train_epoch(
            member.model,
            task,
            member.optimizer,
            member.scaler,
            member.train.x,
            member.train.y,
            member.batch_size,
            member.order,
            member.passes,
            member.train.lengths,
            member.augmenter,
        )

    @abc.abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor, task: Task) -> torch.Tensor:
        """The mean training loss of one batch's model ``output`` against ``target``."""

    @abc.abstractmethod
    def evaluate(
        self,
        model: nn.Module,
        task: Task,
        x: torch.Tensor,
        y: torch.Tensor,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """``loss`` and each of `metrics` of ``model`` on ``(x, y)``, in eval mode; ``lengths``
        (true lengths of padded series) go to the model's forward when given."""

    @abc.abstractmethod
    def reward(self, val: dict[str, float], task: Task, metric: str) -> float:
        """The reward of validation results ``val`` (from `evaluate`); larger is better."""

    def _evaluate(
        self,
        model: nn.Module,
        task: Task,
        x: torch.Tensor,
        y: torch.Tensor,
        lengths: torch.Tensor | None,
    ) -> dict[str, float]:
        # lengths only when there are some, so an `evaluate` without the argument still works
        if lengths is None:
            return self.evaluate(model, task, x, y)
        return self.evaluate(model, task, x, y, lengths)

    def _train_epoch(
        self,
        model: nn.Module,
        task: Task,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        order: torch.Generator,
        passes: int = 1,
        lengths: torch.Tensor | None = None,
        augmenter: Augmenter | None = None,
    ) -> float:
        """``passes`` passes over ``(x, y)``, each in a seeded random order, batches through
        ``augmenter`` when given; returns the mean training loss."""
        dev = x.device
        loss_sum = torch.zeros((), device=dev)
        seen = 0
        for _ in range(passes):
            perm = torch.randperm(len(x), generator=order).to(dev)
            if len(perm) % batch_size == 1 and len(perm) > 1:
                # a batch of one breaks batch norm; a different sample waits each pass
                perm = perm[:-1]
            for i in range(0, len(perm), batch_size):
                idx = perm[i : i + batch_size]
                with autocast(dev):
                    output = forward(model, x, idx, lengths, augmenter)
                loss = self.loss(output, y[idx], task)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss.detach() * len(idx)
            seen += len(perm)
        return (loss_sum / seen).item()  # one device sync per epoch


class _Split(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None

    def take(self, index: np.ndarray) -> _Split:
        i = torch.as_tensor(index, device=self.x.device)
        return _Split(self.x[i], self.y[i], None if self.lengths is None else self.lengths[i])


class _Member:
    """One model in training: holdout's only one, or one per cross-validation fold."""

    def __init__(self, model: nn.Module, train: _Split, val: _Split, seed: int) -> None:
        self.model, self.train, self.val, self.seed = model, train, val, seed
        self.order = torch.Generator().manual_seed(seed)

    def start(
        self,
        lr: float,
        weight_decay: float,
        dev: torch.device,
        batch_size: int,
        augment: tuple[str, ...] = (),
    ) -> None:
        params = self.model.parameters()
        self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        self.scaler = grad_scaler(dev)
        self.batch_size, self.passes = epoch_plan(len(self.train.x), batch_size)
        self.augmenter = Augmenter(augment, self.seed) if augment else None


def _pooled(
    members: list[_Member], train_losses: list[float], vals: list[dict[str, float]]
) -> tuple[float, dict[str, float]]:
    """Holdout values as they are; over folds, means weighted by the folds' sizes (pooled
    accuracy and loss exactly)."""
    if len(members) == 1 or len(vals) < len(members):
        return train_losses[-1], vals[-1]
    sizes = [len(m.val.y) for m in members]
    total = sum(sizes)
    train_sizes = [len(m.train.y) for m in members]
    train_loss = sum(t * n for t, n in zip(train_losses, train_sizes, strict=True))
    pooled = {k: sum(v[k] * n for v, n in zip(vals, sizes, strict=True)) / total for k in vals[0]}
    return train_loss / sum(train_sizes), pooled


def _ensemble(model: nn.Module, states: list[dict[str, torch.Tensor]], combine: str) -> Ensemble:
    """Copies of ``model`` holding each of ``states``, as one `Ensemble`."""
    members = []
    for state in states:
        member = copy.deepcopy(model)
        member.load_state_dict(state)
        members.append(member)
    return Ensemble(members, combine)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def split_lengths(model: nn.Module, task: Task, device: torch.device) -> dict[str, torch.Tensor]:
    """The task's per-split series lengths on ``device`` if it has padded series and the model's
    forward takes ``lengths``; else empty (the model sees the padded inputs only)."""
    if not task.lengths:
        return {}
    try:
        accepts = "lengths" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        accepts = False
    return {k: v.to(device) for k, v in task.lengths.items()} if accepts else {}


def forward(
    model: nn.Module,
    x: torch.Tensor,
    idx: torch.Tensor | slice,
    lengths: torch.Tensor | None,
    augmenter: Augmenter | None = None,
) -> torch.Tensor:
    """``model(x[idx])``, with ``lengths[idx]`` when lengths are given; the batch first goes
    through ``augmenter`` when one is given."""
    batch = x[idx]
    batch_lengths = None if lengths is None else lengths[idx]
    if augmenter:
        batch = augmenter(batch, batch_lengths)
    if batch_lengths is None:
        return model(batch)
    return model(batch, batch_lengths)


def _materialize_lazy(model: nn.Module, sample: torch.Tensor) -> None:
    """Run one forward pass if the model has lazy parameters, so the optimizer sees them all."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        with torch.no_grad():
            model.eval()
            model(sample)
