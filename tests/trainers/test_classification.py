"""The classification trainer's metrics: accuracy, macro-F1, UAR; any of them the reward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spaces.families import build_model
from trainers import ClassificationTrainer, Task, TrainOptions, load_task
from trainers.classification import TIE_BREAK

FINAL_KEYS = {f"{split}_{m}" for split in ("val", "test") for m in ("accuracy", "macro_f1", "uar")}


def _imbalanced() -> Task:
    """90 % class 0: a model predicting 0 everywhere has high accuracy but UAR 0.5."""
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(400, generator=g) < 0.1).long()
    x = torch.randn(400, 4, generator=g) + y[:, None] * 0.8
    return Task(
        "imb", "classification", (4,), 2, x[:240], y[:240], x[240:320], y[240:320], x[320:], y[320:]
    )


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "uar"])
def test_metric_is_the_reward_and_every_metric_is_reported(metric: str) -> None:
    task = _imbalanced()
    torch.manual_seed(0)
    reports: list[dict] = []
    result = ClassificationTrainer().fit(
        nn.Linear(4, 2),
        task,
        TrainOptions(epochs=3, seed=0, lr=1e-2, metric=metric),
        report=reports.append,
    )
    assert result.metric == metric
    assert set(result.metrics) == FINAL_KEYS
    best = max(r[f"val_{metric}"] for r in reports)
    assert result.metrics[f"val_{metric}"] == best
    assert best - TIE_BREAK / len(task.y_val) < result.reward <= best
    scores = [
        r[f"val_{metric}"] - TIE_BREAK * r["val_loss"] / (1 + r["val_loss"]) / 80 for r in reports
    ]
    assert [r["reward"] for r in reports] == pytest.approx(
        [max(scores[: i + 1]) for i in range(len(reports))]
    )
    assert result.test_accuracy == result.metrics["test_accuracy"]
    assert result.val_accuracy == result.metrics["val_accuracy"]


def test_unknown_metric_fails_loudly() -> None:
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        ClassificationTrainer().fit(
            nn.Linear(4, 2), _imbalanced(), TrainOptions(epochs=1, seed=0, metric="auc")
        )


def test_rnn_evolved_architecture_learns_a_shipped_archive() -> None:
    task = load_task("ucr:ItalyPowerDemand", seed=0)
    arch = {"cell": "gru", "layers": [{"units": 40, "activation": "tanh"}, {"units": 0}]}
    torch.manual_seed(0)
    model = build_model("rnn", arch, task.input_shape, task.num_outputs)
    trainer = ClassificationTrainer()
    trainer.cv_folds = 0  # holdout keeps this quick; cross-validation is tested with digits
    result = trainer.fit(model, task, TrainOptions(epochs=15, seed=0, lr=1e-2, metric="uar"))
    assert result.reward > 0.75 and result.metrics["test_uar"] > 0.7
