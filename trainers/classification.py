"""The classification trainer: Adam on cross-entropy, reward = best validation metric.

Metrics (`METRICS`): ``accuracy``, ``macro_f1`` (mean F1 over the classes) and ``uar``
(unweighted average recall: mean recall over the classes, the speech challenges' measure).
Any of them is the reward through ``fit(metric=...)``; accuracy by default. The training loop
is `SupervisedTrainer`'s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainers.base import register_trainer
from trainers.device import autocast
from trainers.supervised import SupervisedTrainer
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
class ClassificationTrainer(SupervisedTrainer):
    """Trains a classifier whose forward maps ``(B, *input_shape)`` to logits ``(B, C)``.

    Adam on cross-entropy. ``fit(metric=...)`` picks the reward, one of `METRICS` (accuracy by
    default); ``report`` gets ``val_loss``, ``val_accuracy``, ``val_macro_f1`` and ``val_uar``.
    """

    metrics = METRICS
    reward_metrics = METRICS
    skipped_metrics = METRICS

    def loss(self, output: torch.Tensor, target: torch.Tensor, task: Task) -> torch.Tensor:
        """Cross-entropy of logits ``(B, C)``."""
        _check_logits(output, len(target), task.num_classes)
        return F.cross_entropy(output.float(), target)

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, task: Task, x: torch.Tensor, y: torch.Tensor
    ) -> dict[str, float]:
        """Mean cross-entropy (``loss``) and `METRICS` of ``model`` on ``(x, y)``, in eval mode."""
        model.eval()
        dev = x.device
        loss_sum = torch.zeros((), device=dev)
        predicted = []
        for i in range(0, len(x), EVAL_BATCH_SIZE):
            xb, yb = x[i : i + EVAL_BATCH_SIZE], y[i : i + EVAL_BATCH_SIZE]
            with autocast(dev):
                logits = model(xb)
            _check_logits(logits, len(xb), task.num_classes)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            predicted.append(logits.argmax(dim=1))
        scores = classification_metrics(torch.cat(predicted).cpu(), y.cpu(), task.num_classes)
        return {"loss": loss_sum.item() / len(x), **scores}

    def reward(self, val: dict[str, float], task: Task, metric: str) -> float:
        """The validation ``metric`` itself."""
        return val[metric]


def _check_logits(logits: torch.Tensor, batch: int, num_classes: int) -> None:
    if tuple(logits.shape) != (batch, num_classes):
        raise ValueError(
            f"model output has shape {tuple(logits.shape)}, "
            f"expected logits of shape ({batch}, {num_classes})"
        )
