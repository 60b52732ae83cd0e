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

With ``TrainOptions.augment`` set (sequence classification only), every training batch of every
member passes through a seeded `trainers.augment.Augmenter` first; evaluation never does.
"""

from __future__ import annotations

import abc
import copy
import functools
import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from spaces.ensemble import Ensemble
from trainers.augment import Augmenter
from trainers.base import ReportFn, Trainer, TrainResult, count_parameters
from trainers.device import autocast, grad_scaler, pick_device, seed_everything
from trainers.learning_rate import LearningRate
from trainers.options import TrainOptions
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
    supports_lr_schedule = True
    validation_size: int = 0
    """Validation samples behind the current selection (all folds' when cross-validating)."""
    skipped_metrics: ClassVar[tuple[str, ...]] = ()
    """Metrics recorded as NaN for an epoch whose training loss diverged (validation skipped)."""
    fold_ensemble: bool = True
    """When cross-validating, keep the fold models beside the refit as one `Ensemble`."""

    def train(
        self,
        model: nn.Module,
        task: Task,
        options: TrainOptions,
        metric: str,
        report: ReportFn | None,
    ) -> TrainResult:
        """Train ``model`` in place and return its best-validation result.

        ``model`` is moved to the device, trained, and left holding the best epoch's weights,
        in eval mode (when cross-validating: the refit's, or the best fold model's if the refit
        failed; the result's ``state_dict`` is then the kept `Ensemble`'s when
        ``result.ensemble`` says so). An epoch is one pass over the training split, or several
        for a split under `MIN_EPOCH_SAMPLES` samples, in batches of ``options.batch_size``
        capped at ``1 / MIN_BATCHES`` of the split (see `epoch_plan`). ``report`` is called
        after every epoch with ``epoch`` (1-based), ``lr``, ``train_loss``, ``val_loss``,
        ``val_<metric>`` of each of `metrics` and ``reward`` (best so far); not for an epoch
        that diverged.

        Returns:
            The result; its reward is the best validation `reward`, or 0.0 if a loss became
            NaN or infinite (then ``diverged`` is True and training stopped at that epoch).
            ``metrics`` holds ``val_*`` (best epoch; pooled over folds when cross-validating)
            and ``test_*`` values of `metrics`.
        """
        start = time.perf_counter()
        seed_everything(options.seed)
        dev = pick_device(options.device)
        model.to(dev)
        data = _Data.on(model, task, dev)
        folds = self.folds(task, options.seed)
        initial = copy.deepcopy(model) if folds else None
        members = data.members(model, initial, folds, options.seed)
        self.validation_size = sum(len(m.val.y) for m in members)
        for member in members:
            member.start(options, dev)
        progress = self._train_epochs(members, task, options, metric, report)
        metrics = {f"val_{k}": progress.val.get(k, math.nan) for k in self.metrics}
        kept = model
        if initial is not None and not progress.diverged:
            kept, refit_metrics = self._refit_and_ensemble(
                model, initial, data.pool, progress, task, options, metric
            )
            metrics.update(refit_metrics)
        if progress.state is not None:
            model.load_state_dict(progress.state)
        if kept is not model:
            progress.state = _cpu_state(kept)
        if not progress.diverged:
            metrics.update(self._test(kept, task, dev, data.lengths))
        model.eval()
        kept.eval()
        return progress.result(model, kept, metrics, metric, time.perf_counter() - start)

    def train_as_published(
        self, model: nn.Module, task: Task, options: TrainOptions
    ) -> dict[str, float]:
        """Train ``model`` in place as published recipes do (InceptionTime's, Wang et al.'s
        ResNet): on all labelled series (train + validation) for ``options.epochs``, with no
        validation, keeping the weights of the epoch of lowest training loss (Keras'
        ``ModelCheckpoint`` on the training loss). Returns the ``test_`` metrics of `metrics`.
        For checks against published accuracies, not for searches (nothing selects)."""
        seed_everything(options.seed)
        dev = pick_device(options.device)
        model.to(dev)
        data = _Data.on(model, task, dev)
        member = _Member(model, data.pool, data.pool, options.seed)
        member.start(options, dev)
        lowest, state = math.inf, None
        for epoch in range(1, options.epochs + 1):
            loss = self._member_epoch(member, task, options, epoch)
            if loss < lowest:
                lowest, state = loss, _cpu_state(model)
        if state is not None:
            model.load_state_dict(state)
        model.eval()
        return self._test(model, task, dev, data.lengths)

    def _train_epochs(
        self,
        members: list[_Member],
        task: Task,
        options: TrainOptions,
        metric: str,
        report: ReportFn | None,
    ) -> _Progress:
        """Every epoch of every member, keeping the best pooled validation epoch; stops at the
        first epoch whose loss is not finite."""
        progress = _Progress()
        for epoch in range(1, options.epochs + 1):
            train_losses, vals = self._members_epoch(members, task, options, epoch)
            train_loss, val = _pooled(members, train_losses, vals)
            record = {"epoch": epoch, "lr": members[0].lr.current}
            record["train_loss"] = train_loss
            record.update({f"val_{k}": v for k, v in val.items()})
            if not (math.isfinite(train_loss) and math.isfinite(val["loss"])):
                progress.history.append(record)
                progress.diverged = True
                break
            value = self.reward(val, task, metric)
            if progress.epoch == 0 or value > progress.value:
                progress.value, progress.epoch, progress.val = value, epoch, dict(val)
                if len(members) == 1:
                    progress.state = _cpu_state(members[0].model)
                else:  # ensemble members, and the fallback should the refit fail
                    progress.fold_states = [_cpu_state(m.model) for m in members]
                    progress.fold_values = [self.reward(v, task, metric) for v in vals]
            record["reward"] = progress.value
            progress.history.append(record)
            if report is not None:
                report(dict(record))
        return progress

    def _members_epoch(
        self, members: list[_Member], task: Task, options: TrainOptions, epoch: int
    ) -> tuple[list[float], list[dict[str, float]]]:
        """One epoch of each member and its validation results, up to the first whose loss is
        not finite."""
        train_losses: list[float] = []
        vals: list[dict[str, float]] = []
        for member in members:
            train_losses.append(self._member_epoch(member, task, options, epoch))
            val = {"loss": math.nan, **dict.fromkeys(self.skipped_metrics, math.nan)}
            if math.isfinite(train_losses[-1]):
                val = self._evaluate(member.model, task, *member.val)
            vals.append(val)
            if not (math.isfinite(train_losses[-1]) and math.isfinite(val["loss"])):
                break
        return train_losses, vals

    def _refit_and_ensemble(
        self,
        model: nn.Module,
        initial: nn.Module,
        pool: _Split,
        progress: _Progress,
        task: Task,
        options: TrainOptions,
        metric: str,
    ) -> tuple[nn.Module, dict[str, float]]:
        """Refit ``model`` from the ``initial`` weights on all of ``pool`` (train + validation)
        for the best epoch count; the kept model (the refit if it fits, or the best fold model;
        with the fold models as one `Ensemble` where this trainer ensembles) and the ``refit``
        and ``ensemble`` metrics. ``progress.state`` becomes the weights ``model`` keeps."""
        dev = pool.x.device
        model.load_state_dict(initial.state_dict())
        refit = _Member(model, pool, pool, options.seed)
        refit.start(options, dev)
        refit_state = self._refit(refit, task, options, progress.epoch)
        fit = self._evaluate(model, task, *pool)
        refitted = math.isfinite(fit["loss"]) and (
            self.reward(fit, task, metric) >= progress.value - REFIT_TOLERANCE
        )
        best_fold = progress.fold_states[int(np.argmax(progress.fold_values))]
        progress.state = refit_state if refitted else best_fold
        states = [refit_state] if refitted else []
        if self.ensemble_combine and self.fold_ensemble:
            states += progress.fold_states
        if len(states) < 2:
            return model, {"refit": float(refitted), "ensemble": 0.0}
        kept = _ensemble(model, states, self.ensemble_combine).to(dev)
        return kept, {"refit": float(refitted), "ensemble": float(len(states))}

    def _refit(
        self, member: _Member, task: Task, options: TrainOptions, epochs: int
    ) -> dict[str, torch.Tensor]:
        """Train the refit `member` (the initial weights, all of train + validation) for the
        cross-validated best `epochs` of the schedule over ``options.epochs``; returns its
        weights."""
        for epoch in range(1, epochs + 1):
            self._member_epoch(member, task, options, epoch)
        return _cpu_state(member.model)

    def _test(
        self, model: nn.Module, task: Task, dev: torch.device, lengths: dict[str, torch.Tensor]
    ) -> dict[str, float]:
        """``test_<name>`` of each of `metrics` of the kept ``model``, for reporting only."""
        x_test, y_test = task.x_test.to(dev), task.y_test.to(dev)
        test = self._evaluate(model, task, x_test, y_test, lengths.get("test"))
        return {f"test_{k}": test[k] for k in self.metrics}

    def folds(self, task: Task, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Cross-validation folds over train + validation (indices into their concatenation),
        or none: holdout validation. Subclasses that cross-validate small tasks override it."""
        return []

    def _member_epoch(
        self, member: _Member, task: Task, options: TrainOptions, epoch: int
    ) -> float:
        for group in member.optimizer.param_groups:
            group["lr"] = member.lr.at(epoch)
        member.model.train()
        loss = self._train_epoch(
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
        member.lr.after(loss)
        return loss

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

    def start(self, options: TrainOptions, dev: torch.device) -> None:
        """Its optimiser, grad scaler, batch plan and (with ``options.augment``) augmenter."""
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=options.lr)
        self.lr = LearningRate(options)
        self.scaler = grad_scaler(dev)
        self.batch_size, self.passes = epoch_plan(len(self.train.x), options.batch_size)
        self.augmenter = Augmenter(options.augment, self.seed) if options.augment else None


@dataclass
class _Data:
    """A task's training and validation splits on the device, with the lengths the model
    takes."""

    train: _Split
    val: _Split
    lengths: dict[str, torch.Tensor]

    @classmethod
    def on(cls, model: nn.Module, task: Task, dev: torch.device) -> _Data:
        """The splits on ``dev``; a lazy ``model`` is materialised on the first two inputs."""
        x_train, y_train = task.x_train.to(dev), task.y_train.to(dev)
        x_val, y_val = task.x_val.to(dev), task.y_val.to(dev)
        _materialize_lazy(model, x_train[:2])
        lengths = split_lengths(model, task, dev)
        return cls(
            _Split(x_train, y_train, lengths.get("train")),
            _Split(x_val, y_val, lengths.get("val")),
            lengths,
        )

    @functools.cached_property
    def pool(self) -> _Split:
        """Train + validation as one split (what folds index and the refit trains on)."""
        lengths = None
        if self.lengths:
            lengths = torch.cat([self.lengths["train"], self.lengths["val"]])
        return _Split(
            torch.cat([self.train.x, self.val.x]), torch.cat([self.train.y, self.val.y]), lengths
        )

    def members(
        self,
        model: nn.Module,
        initial: nn.Module | None,
        folds: list[tuple[np.ndarray, np.ndarray]],
        seed: int,
    ) -> list[_Member]:
        """``model`` on the holdout split, or a copy of ``initial`` per fold of the pool."""
        if initial is None:
            return [_Member(model, self.train, self.val, seed)]
        return [
            _Member(copy.deepcopy(initial), self.pool.take(tr), self.pool.take(va), seed + i)
            for i, (tr, va) in enumerate(folds)
        ]


@dataclass
class _Progress:
    """What the epochs so far produced: their records and the best (pooled) validation epoch
    with its weights (holdout) or every fold model's weights and reward (cross-validation)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    value: float = 0.0
    epoch: int = 0
    val: dict[str, float] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None
    fold_states: list[dict[str, torch.Tensor]] = field(default_factory=list)
    fold_values: list[float] = field(default_factory=list)
    diverged: bool = False

    def result(
        self,
        model: nn.Module,
        kept: nn.Module,
        metrics: dict[str, float],
        metric: str,
        seconds: float,
    ) -> TrainResult:
        """The `TrainResult` of a finished training whose kept model is ``kept``."""
        return TrainResult(
            reward=0.0 if self.diverged else self.value,
            val_accuracy=metrics.get("val_accuracy", 0.0) if self.val else 0.0,
            test_accuracy=metrics.get("test_accuracy"),
            best_epoch=self.epoch,
            epochs=len(self.history),
            params=count_parameters(model),
            train_seconds=seconds,
            history=self.history,
            state_dict=self.state or {},
            diverged=self.diverged,
            metrics=metrics,
            metric=metric,
            ensemble=len(kept.members) if isinstance(kept, Ensemble) else 0,
            ensemble_combine=kept.combine if isinstance(kept, Ensemble) else "",
        )


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
