"""The supervised training loop shared by the classification and forecasting trainers.

Like minGPT's trainer it knows nothing of the model: it moves the task's tensors to the device
whole, draws batches with a seeded permutation (no DataLoader), trains with Adam and a grad
scaler under autocast, keeps the weights of the best validation epoch, restores them at the end,
and only then evaluates the test split, for reporting. A subclass says what a batch's loss is,
how a split is evaluated, and how validation metrics make the reward.
"""

from __future__ import annotations

import abc
import math
import time
from typing import Any, ClassVar

import torch
from torch import nn

from trainers.base import ReportFn, Trainer, TrainerError, TrainResult, count_parameters
from trainers.device import autocast, grad_scaler, pick_device, seed_everything
from trainers.tasks import Task

__all__ = ["SupervisedTrainer"]


class SupervisedTrainer(Trainer):
    """Adam on a per-batch loss; the reward is the best validation value of a metric.

    Subclasses set `metrics` and `reward_metrics` and implement `loss`, `evaluate` and `reward`.
    """

    metrics: ClassVar[tuple[str, ...]]
    """Names `evaluate` returns besides ``loss``: ``TrainResult.metrics`` has ``val_``/``test_``
    of each."""
    reward_metrics: ClassVar[tuple[str, ...]]
    """Values ``fit(metric=...)`` accepts; the first is the default."""
    skipped_metrics: ClassVar[tuple[str, ...]] = ()
    """Metrics recorded as NaN for an epoch whose training loss diverged (validation skipped)."""

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
                best epoch's weights, in eval mode.
            task: A task of this trainer's kind.
            epochs: Number of passes over the training split.
            seed: Seeds Python, NumPy and torch, and the batch order.
            device: Where to train; default: `pick_device()`.
            batch_size: Training batch size.
            lr: Adam learning rate.
            weight_decay: Adam weight decay.
            metric: The validation metric the reward is made of: one of `reward_metrics`.
            report: Called after every epoch with ``epoch`` (1-based), ``train_loss``,
                ``val_loss``, ``val_<metric>`` of each of `metrics` and ``reward`` (best so
                far). Not called for an epoch that diverged.

        Returns:
            The result; its reward is the best validation `reward`, or 0.0 if a loss became
            NaN or infinite (then ``diverged`` is True and training stopped at that epoch).
            ``metrics`` holds ``val_*`` (best epoch) and ``test_*`` values of `metrics`.
        """
        metric = self.reward_metrics[0] if metric is None else metric
        if metric not in self.reward_metrics:
            known = ", ".join(self.reward_metrics)
            raise ValueError(f"unknown metric {metric!r}; known: {known}")
        if task.kind != self.kind:
            raise TrainerError(
                f"{type(self).__name__} trains {self.kind!r} tasks, "
                f"task {task.name!r} is {task.kind!r}"
            )
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
        start = time.perf_counter()
        seed_everything(seed)
        dev = pick_device(device)
        model.to(dev)
        x_train, y_train = task.x_train.to(dev), task.y_train.to(dev)
        x_val, y_val = task.x_val.to(dev), task.y_val.to(dev)
        _materialize_lazy(model, x_train[:2])
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        scaler = grad_scaler(dev)
        order = torch.Generator().manual_seed(seed)

        history: list[dict[str, Any]] = []
        best_value, best_epoch, best_state = 0.0, 0, None
        best_val: dict[str, float] = {}
        diverged = False
        for epoch in range(1, epochs + 1):
            model.train()
            train_loss = self._train_epoch(
                model, task, optimizer, scaler, x_train, y_train, batch_size, order
            )
            val = {"loss": math.nan, **dict.fromkeys(self.skipped_metrics, math.nan)}
            if math.isfinite(train_loss):
                val = self.evaluate(model, task, x_val, y_val)
            record = {"epoch": epoch, "train_loss": train_loss}
            record.update({f"val_{k}": v for k, v in val.items()})
            if not (math.isfinite(train_loss) and math.isfinite(val["loss"])):
                history.append(record)
                diverged = True
                break
            value = self.reward(val, task, metric)
            if best_state is None or value > best_value:
                best_value, best_epoch, best_val = value, epoch, dict(val)
                best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
            record["reward"] = best_value
            history.append(record)
            if report is not None:
                report(dict(record))

        metrics = {f"val_{k}": best_val.get(k, math.nan) for k in self.metrics}
        if best_state is not None:
            model.load_state_dict(best_state)
        if not diverged:
            test = self.evaluate(model, task, task.x_test.to(dev), task.y_test.to(dev))
            metrics.update({f"test_{k}": test[k] for k in self.metrics})
        model.eval()
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
        )

    @abc.abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor, task: Task) -> torch.Tensor:
        """The mean training loss of one batch's model ``output`` against ``target``."""

    @abc.abstractmethod
    def evaluate(
        self, model: nn.Module, task: Task, x: torch.Tensor, y: torch.Tensor
    ) -> dict[str, float]:
        """``loss`` and each of `metrics` of ``model`` on ``(x, y)``, in eval mode."""

    @abc.abstractmethod
    def reward(self, val: dict[str, float], task: Task, metric: str) -> float:
        """The reward of validation results ``val`` (from `evaluate`); larger is better."""

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
    ) -> float:
        """One pass over ``(x, y)`` in a seeded random order; returns the mean training loss."""
        dev = x.device
        perm = torch.randperm(len(x), generator=order).to(dev)
        if len(perm) % batch_size == 1 and len(perm) > 1:
            perm = perm[
                :-1
            ]  # a batch of one breaks batch norm; a different sample waits each epoch
        loss_sum = torch.zeros((), device=dev)
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            with autocast(dev):
                output = model(x[idx])
            loss = self.loss(output, y[idx], task)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach() * len(idx)
        return (loss_sum / len(perm)).item()  # one device sync per epoch


def _materialize_lazy(model: nn.Module, sample: torch.Tensor) -> None:
    """Run one forward pass if the model has lazy parameters, so the optimizer sees them all."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        with torch.no_grad():
            model.eval()
            model(sample)
