"""The classification trainer: Adam on cross-entropy, reward = best validation metric.

Metrics (`METRICS`): ``accuracy``, ``macro_f1`` (mean F1 over the classes) and ``uar``
(unweighted average recall: mean recall over the classes, the speech challenges' measure).
Any of them is the reward through ``fit(metric=...)``; accuracy by default.

The task's tensors are small, so they live on the device whole; batches are drawn with a seeded
permutation instead of a DataLoader. The weights of the best validation epoch are kept and
restored at the end, and only then is the test split evaluated, for reporting.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainers.base import (
    ReportFn,
    Trainer,
    TrainerError,
    TrainResult,
    count_parameters,
    register_trainer,
)
from trainers.device import autocast, grad_scaler, pick_device, seed_everything
from trainers.tasks import Task

__all__ = ["METRICS", "ClassificationTrainer", "classification_metrics"]

EVAL_BATCH_SIZE = 4096
METRICS = ("accuracy", "macro_f1", "uar")


def classification_metrics(
    predicted: torch.Tensor, target: torch.Tensor, num_classes: int
) -> dict[str, float]:
    """Accuracy, macro-F1 and UAR of integer predictions against targets.

    Classes absent from both the targets and the predictions are left out of the macro
    averages (their F1 and recall are undefined); a class predicted but never true counts
    with F1 0.
    """
    confusion = (
        torch.bincount(target.long() * num_classes + predicted.long(), minlength=num_classes**2)
        .reshape(num_classes, num_classes)
        .double()
    )  # rows: true class, columns: predicted
    tp = confusion.diag()
    true_n, pred_n = confusion.sum(1), confusion.sum(0)
    present = true_n > 0
    recall = tp[present] / true_n[present]
    seen = present | (pred_n > 0)
    f1 = 2 * tp[seen] / (true_n[seen] + pred_n[seen])
    return {
        "accuracy": (tp.sum() / confusion.sum()).item(),
        "macro_f1": f1.mean().item() if seen.any() else 0.0,
        "uar": recall.mean().item() if present.any() else 0.0,
    }


@register_trainer("classification")
class ClassificationTrainer(Trainer):
    """Trains a classifier whose forward maps ``(B, *input_shape)`` to logits ``(B, C)``."""

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
        metric: str = "accuracy",
        report: ReportFn | None = None,
    ) -> TrainResult:
        """Train ``model`` in place and return its best-validation result.

        Args:
            model: A built classifier; it is moved to the device, trained, and left holding the
                best epoch's weights, in eval mode.
            task: A task of kind ``"classification"``.
            epochs: Number of passes over the training split.
            seed: Seeds Python, NumPy and torch, and the batch order.
            device: Where to train; default: `pick_device()`.
            batch_size: Training batch size.
            lr: Adam learning rate.
            weight_decay: Adam weight decay.
            metric: The validation metric that is the reward: one of `METRICS`.
            report: Called after every epoch with ``epoch`` (1-based), ``train_loss``,
                ``val_loss``, ``val_accuracy``, ``val_macro_f1``, ``val_uar`` and ``reward``
                (the best validation ``metric`` so far). Not called for an epoch that diverged.

        Returns:
            The result; its reward is the best validation ``metric``, or 0.0 if a loss became
            NaN or infinite (then ``diverged`` is True and training stopped at that epoch).
            ``metrics`` holds ``val_*`` (best epoch) and ``test_*`` values of every metric.
        """
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
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
            train_loss = _train_epoch(
                model, optimizer, scaler, x_train, y_train, batch_size, order, task.num_classes
            )
            val_loss, scores = math.nan, dict.fromkeys(METRICS, math.nan)
            if math.isfinite(train_loss):
                val_loss, scores = _evaluate(model, x_val, y_val, task.num_classes)
            record = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
            record.update({f"val_{k}": v for k, v in scores.items()})
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                history.append(record)
                diverged = True
                break
            if best_state is None or scores[metric] > best_value:
                best_value, best_epoch, best_val = scores[metric], epoch, dict(record)
                best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
            record["reward"] = best_value
            history.append(record)
            if report is not None:
                report(dict(record))

        metrics = {f"val_{k}": best_val.get(f"val_{k}", math.nan) for k in METRICS}
        if best_state is not None:
            model.load_state_dict(best_state)
        if not diverged:
            x_test, y_test = task.x_test.to(dev), task.y_test.to(dev)
            test_scores = _evaluate(model, x_test, y_test, task.num_classes)[1]
            metrics.update({f"test_{k}": v for k, v in test_scores.items()})
        model.eval()
        return TrainResult(
            reward=0.0 if diverged else best_value,
            val_accuracy=metrics["val_accuracy"] if best_val else 0.0,
            test_accuracy=metrics.get("test_accuracy"),
            metrics=metrics,
            metric=metric,
            best_epoch=best_epoch,
            epochs=len(history),
            params=count_parameters(model),
            train_seconds=time.perf_counter() - start,
            history=history,
            state_dict=best_state or {},
            diverged=diverged,
        )


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    order: torch.Generator,
    num_classes: int,
) -> float:
    """One pass over ``(x, y)`` in a seeded random order; returns the mean training loss."""
    dev = x.device
    perm = torch.randperm(len(x), generator=order).to(dev)
    if len(perm) % batch_size == 1 and len(perm) > 1:
        perm = perm[:-1]  # a batch of one breaks batch norm; a different sample waits each epoch
    loss_sum = torch.zeros((), device=dev)
    for i in range(0, len(perm), batch_size):
        idx = perm[i : i + batch_size]
        with autocast(dev):
            logits = model(x[idx])  # (B, C)
        _check_logits(logits, len(idx), num_classes)
        loss = F.cross_entropy(logits.float(), y[idx])
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach() * len(idx)
    return (loss_sum / len(perm)).item()  # one device sync per epoch


@torch.no_grad()
def _evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int
) -> tuple[float, dict[str, float]]:
    """Mean cross-entropy and `METRICS` of ``model`` on ``(x, y)``, in eval mode."""
    model.eval()
    dev = x.device
    loss_sum = torch.zeros((), device=dev)
    predicted = []
    for i in range(0, len(x), EVAL_BATCH_SIZE):
        xb, yb = x[i : i + EVAL_BATCH_SIZE], y[i : i + EVAL_BATCH_SIZE]
        with autocast(dev):
            logits = model(xb)
        _check_logits(logits, len(xb), num_classes)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        predicted.append(logits.argmax(dim=1))
    scores = classification_metrics(torch.cat(predicted).cpu(), y.cpu(), num_classes)
    return loss_sum.item() / len(x), scores


def _check_logits(logits: torch.Tensor, batch: int, num_classes: int) -> None:
    if tuple(logits.shape) != (batch, num_classes):
        raise ValueError(
            f"model output has shape {tuple(logits.shape)}, "
            f"expected logits of shape ({batch}, {num_classes})"
        )


def _materialize_lazy(model: nn.Module, sample: torch.Tensor) -> None:
    """Run one forward pass if the model has lazy parameters, so the optimizer sees them all."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
        with torch.no_grad():
            model.eval()
            model(sample)
