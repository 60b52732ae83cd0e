"""Forecasting: windowed tasks (Airline, Lynx, Mackey-Glass), RMSE/MAE, bounded reward."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spaces.families import build_model, family_trainer, list_families
from trainers import ForecastingTrainer, TaskError, TrainOptions, get_trainer, load_task
from trainers.forecasting import forecast_task, mackey_glass


@pytest.mark.parametrize("name", ["forecast:Airline", "forecast:Lynx", "forecast:MackeyGlass"])
def test_forecast_tasks_load_in_time_order(name: str) -> None:
    task = load_task(name)
    assert task.kind == "forecasting" and task.horizon == 1 and task.num_outputs == 1
    assert task.y_train.dtype == torch.float32 and task.y_train.shape == (len(task.x_train), 1)
    # the target of one window is the last input of the next (consecutive windows)
    assert torch.equal(task.x_train[1, -1, 0], task.y_train[0, 0])


def test_multi_step_horizon_and_bad_names() -> None:
    task = load_task("forecast:Airline:12")
    assert task.horizon == 12 and task.y_val.shape == (len(task.x_val), 12)
    with pytest.raises(TaskError, match="horizon"):
        load_task("forecast:Airline:0")
    with pytest.raises(TaskError, match="forecast:MackeyGlass"):
        load_task("forecast:Sunspots")


def test_mackey_glass_is_seeded_and_bounded() -> None:
    a, b = mackey_glass(500, seed=0), mackey_glass(500, seed=0)
    assert np.array_equal(a, b) and 0.2 < a.min() < a.max() < 1.6


def test_splits_do_not_share_targets() -> None:
    task = forecast_task("toy", np.arange(100.0), window=5, horizon=3)
    mean, scale = task.metadata["mean"], task.metadata["scale"]
    last = {s: getattr(task, f"y_{s}")[:, -1] * scale + mean for s in ("train", "val", "test")}
    assert last["train"].max() < last["val"].min() and last["val"].max() < last["test"].min()


@pytest.mark.parametrize("family", [f for f in list_families() if family_trainer(f) is None])
def test_every_family_forecasts_and_the_reward_is_bounded(family: str) -> None:
    from tests.spaces.test_families_sequence import SEQUENCE_EXAMPLES

    task = load_task("forecast:Lynx:3")
    torch.manual_seed(0)
    model = build_model(family, SEQUENCE_EXAMPLES[family], task.input_shape, task.num_outputs)
    reports: list[dict] = []
    result = get_trainer("forecasting").fit(
        model, task, TrainOptions(epochs=2, seed=0, lr=1e-2), report=reports.append
    )
    assert isinstance(get_trainer("forecasting"), ForecastingTrainer)
    assert 0.0 < result.reward <= 1.0 and result.test_accuracy is None
    assert set(result.metrics) == {"val_rmse", "val_mae", "test_rmse", "test_mae"}
    assert all(math.isfinite(v) and v > 0 for v in result.metrics.values())
    scale = task.metadata["scale"]
    assert result.reward == pytest.approx(1 / (1 + result.metrics["val_rmse"] / scale))
    assert {"val_rmse", "val_mae", "reward"} <= set(reports[0])


@pytest.mark.slow
def test_mackey_glass_is_learnt_one_step_ahead() -> None:
    task = load_task("forecast:MackeyGlass")
    torch.manual_seed(0)
    arch = {"layers": [{"channels": 16, "kernel": 3}] * 3, "readout": "last"}
    model = build_model("tdnn", arch, task.input_shape, 1)
    result = ForecastingTrainer().fit(model, task, TrainOptions(epochs=10, seed=0, lr=3e-3))
    assert result.reward > 0.8  # validation RMSE under a quarter of the series' std
