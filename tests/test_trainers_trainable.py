"""search.trainable.train_child on a sequence task: per-epoch and final metrics (Tune faked)."""

from __future__ import annotations

import math

import pytest

from search import trainable


@pytest.mark.parametrize(
    ("metric", "options"),
    [(None, {}), ("uar", {"metric": "uar"}), ("macro_f1", {"reward_expression": "val_macro_f1"})],
)
def test_train_child_reports_metrics_and_reward(
    monkeypatch: pytest.MonkeyPatch, metric, options
) -> None:
    reports: list[dict] = []
    monkeypatch.setattr(trainable.tune, "report", lambda r, checkpoint=None: reports.append(r))
    setup = {
        "task": "uea:BasicMotions",
        "data_seed": 0,
        "family": "tdnn",
        "epochs": 2,
        "batch_size": 16,
        "lr": 1e-2,
        "space": "tdnn",
        **options,
    }
    arch = {"layers": [{"channels": 8, "kernel": 3}], "readout": "mean"}
    trainable.train_child({"setup": setup, "architecture": arch, "train_seed": 0})
    epochs, final = reports[:-1], reports[-1]
    assert len(epochs) == 2 and final["final"]
    key = f"val_{metric or 'accuracy'}"
    assert [r["reward"] for r in epochs] == [max(r[key] for r in epochs[: i + 1]) for i in range(2)]
    assert final["reward"] == epochs[-1]["reward"]
    for name in ("val_accuracy", "val_macro_f1", "val_uar", "test_accuracy", "test_uar"):
        assert math.isfinite(final[name])
