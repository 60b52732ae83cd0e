"""The classification trainer: Adam on cross-entropy, reward = best validation metric.

Metrics (`METRICS`): ``accuracy``, ``macro_f1`` (mean F1 over the classes) and ``uar``
(unweighted average recall: mean recall over the classes, the speech challenges' measure).
Any of them is the reward through ``TrainOptions.metric``; accuracy by default. The training loop
is `SupervisedTrainer`'s.

Small validation splits make accuracy coarse (ten series score in steps of 0.1, and many epochs
and children reach 1.0), so the reward subtracts a tie-breaker from the validation
cross-entropy: ``metric - TIE_BREAK * (loss / (1 + loss)) / n_val``. It is under half of one
validation sample's worth of accuracy, so it never reverses an accuracy difference; among equal
accuracies the lower validation loss wins, both for the epoch kept and across children.

Tasks of at most `CV_MAX_SAMPLES` train + validation series (most UCR archives) are
cross-validated: `CV_FOLDS` stratified folds (seeded), validation metrics pooled over them, and
the kept model is the refit on train + validation together with the fold models, their class
probabilities averaged (see `SupervisedTrainer`). Set ``cv_folds = 0`` on the trainer for
plain holdout validation, ``fold_ensemble = False`` to keep the refit alone.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainers.base import register_trainer
from trainers.device import autocast
from trainers.supervised import SupervisedTrainer, forward
from trainers.tasks import Task

__all__ = ["METRICS", "ClassificationTrainer", "classification_metrics"]

EVAL_BATCH_SIZE = 4096
METRICS = ("accuracy", "macro_f1", "uar")
TIE_BREAK = 0.5
"""Weight of the validation-loss tie-breaker, in units of one validation sample (0 disables)."""
CV_FOLDS = 5
CV_MAX_SAMPLES = 200
"""Tasks with at most this many train + validation series are cross-validated (`CV_FOLDS`)."""


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

    Adam on cross-entropy. ``TrainOptions.metric`` picks the reward, one of `METRICS` (accuracy by
    default) with the validation-loss tie-breaker; ``report`` gets ``val_loss``,
    ``val_accuracy``, ``val_macro_f1`` and ``val_uar``.
    """

    metrics = METRICS
    reward_metrics = METRICS
    skipped_metrics = METRICS
    ensemble_combine = "probabilities"
    supports_augment = True

    def loss(self, output: torch.Tensor, target: torch.Tensor, task: Task) -> torch.Tensor:
        """Cross-entropy of logits ``(B, C)``."""
        _check_logits(output, len(target), task.num_classes)
        return F.cross_entropy(output.float(), target)

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        task: Task,
        x: torch.Tensor,
        y: torch.Tensor,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """Mean cross-entropy (``loss``) and `METRICS` of ``model`` on ``(x, y)``, in eval mode."""
        model.eval()
        dev = x.device
        loss_sum = torch.zeros((), device=dev)
        predicted = []
        for i in range(0, len(x), EVAL_BATCH_SIZE):
            yb = y[i : i + EVAL_BATCH_SIZE]
            with autocast(dev):
                logits = forward(model, x, slice(i, i + EVAL_BATCH_SIZE), lengths)
            _check_logits(logits, len(yb), task.num_classes)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            predicted.append(logits.argmax(dim=1))
        scores = classification_metrics(torch.cat(predicted).cpu(), y.cpu(), task.num_classes)
        return {"loss": loss_sum.item() / len(x), **scores}

    tie_break: float = TIE_BREAK
    cv_folds: int = CV_FOLDS
    cv_max_samples: int = CV_MAX_SAMPLES

    def reward(self, val: dict[str, float], task: Task, metric: str) -> float:
        """The validation ``metric``, less the validation-loss tie-breaker (module docstring)."""
        loss = val["loss"]
        n_val = self.validation_size or len(task.y_val)
        return val[metric] - self.tie_break * loss / (1.0 + loss) / max(n_val, 1)

    def folds(self, task: Task, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Stratified, seeded `cv_folds` folds of train + validation when they hold at most
        `cv_max_samples` series (fewer folds if a class is smaller); else none (holdout)."""
        y = torch.cat([task.y_train, task.y_val]).numpy()
        if self.cv_folds < 2 or len(y) > self.cv_max_samples:
            return []
        counts = np.bincount(y)
        k = min(self.cv_folds, int(counts[counts > 0].min()))
        if k < 2:
            return []
        from sklearn.model_selection import StratifiedKFold

        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y))


def _check_logits(logits: torch.Tensor, batch: int, num_classes: int) -> None:
    if tuple(logits.shape) != (batch, num_classes):
        raise ValueError(
            f"model output has shape {tuple(logits.shape)}, "
            f"expected logits of shape ({batch}, {num_classes})"
        )
