"""Forecasting: windowed tasks on shipped and generated series, and their trainer.

Tasks (``forecast:NAME`` one step ahead, ``forecast:NAME:H`` H steps ahead):

- ``Airline`` (144 monthly passenger counts, window 24) and ``Lynx`` (114 yearly trappings,
  window 12), read offline from aeon's installed data files;
- ``MackeyGlass``: the chaotic Mackey-Glass series (tau 17), generated (1500 points, window 32).

Each sample is a window of past values ``(W, 1)`` and the next H values. Windows are split in
time order (targets of the first 70 % of the series train, the next 15 % validate, the last
15 % test), and values are standardised with the training part's mean and standard deviation.

The trainer minimises MSE on the standardised scale. It reports RMSE and MAE in the series'
own units; the reward is ``1 / (1 + RMSE / std)`` on validation data (in (0, 1], higher is
better, scale-free), from the best epoch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainers.base import register_trainer
from trainers.device import autocast
from trainers.supervised import SupervisedTrainer, forward
from trainers.tasks import Task, TaskError, register_resolver

__all__ = ["FORECAST_SERIES", "ForecastingTrainer", "forecast_task", "mackey_glass"]

EVAL_BATCH_SIZE = 4096


def mackey_glass(n: int = 1500, tau: int = 17, seed: int = 0, dt: float = 1.0) -> np.ndarray:
    """The Mackey-Glass series dx/dt = 0.2 x(t - tau) / (1 + x(t - tau)^10) - 0.1 x(t).

    Integrated with 10 Euler sub-steps per unit of time from a seeded constant history near
    1.2; the first 300 points (transient) are dropped.
    """
    rng = np.random.default_rng(seed)
    sub = 10
    h = dt / sub
    lag = tau * sub
    total = (n + 300) * sub
    x = np.empty(total + lag)
    x[: lag + 1] = 1.2 + 0.01 * rng.standard_normal()
    for t in range(lag, total + lag - 1):
        delayed = x[t - lag]
        x[t + 1] = x[t] + h * (0.2 * delayed / (1 + delayed**10) - 0.1 * x[t])
    return x[lag::sub][300 : 300 + n].astype(np.float64)


def _read_shipped(name: str) -> np.ndarray:
    from trainers.sequences import AEON_DATA_DIR

    path = AEON_DATA_DIR / name / f"{name}.csv"
    try:
        values = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=(1,))
    except OSError as exc:
        raise TaskError(f"task forecast:{name}: cannot read {path} ({exc})") from None
    return values.astype(np.float64)


FORECAST_SERIES: dict[str, tuple[Any, int]] = {
    "Airline": (lambda: _read_shipped("Airline"), 24),
    "Lynx": (lambda: _read_shipped("Lynx"), 12),
    "MackeyGlass": (mackey_glass, 32),
}
"""Series by name: ``(values(), window)``."""


def forecast_task(name: str, series: np.ndarray, window: int, horizon: int, seed: int = 0) -> Task:
    """Windows of ``series``, split 70/15/15 in time order by target, standardised."""
    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1 or not np.isfinite(series).all():
        raise TaskError(f"task {name}: the series must be 1-D and finite")
    n = len(series)
    starts = np.arange(0, n - window - horizon + 1)  # window [s, s+W), targets [s+W, s+W+H)
    last_target = starts + window + horizon - 1
    cut_train, cut_val = int(0.70 * n), int(0.85 * n)
    parts = {
        "train": starts[last_target < cut_train],
        "val": starts[(last_target >= cut_train) & (last_target < cut_val)],
        "test": starts[last_target >= cut_val],
    }
    for split, idx in parts.items():
        if len(idx) == 0:
            raise TaskError(f"task {name}: the series is too short for a {split} split")
    mean, std = series[:cut_train].mean(), series[:cut_train].std() or 1.0
    z = ((series - mean) / std).astype(np.float32)
    tensors = {}
    for split, idx in parts.items():
        x = np.stack([z[s : s + window] for s in idx])[:, :, None]  # (N, W, 1)
        y = np.stack([z[s + window : s + window + horizon] for s in idx])  # (N, H)
        tensors[split] = (torch.from_numpy(x), torch.from_numpy(y))
    return Task(
        name=name,
        kind="forecasting",
        input_shape=(window, 1),
        num_classes=0,
        x_train=tensors["train"][0],
        y_train=tensors["train"][1],
        x_val=tensors["val"][0],
        y_val=tensors["val"][1],
        x_test=tensors["test"][0],
        y_test=tensors["test"][1],
        metadata={"seed": seed, "mean": float(mean), "scale": float(std), "window": window},
        horizon=horizon,
    )


def _resolve(rest: str, seed: int) -> Task:
    base, _, steps = rest.partition(":")
    if base not in FORECAST_SERIES:
        known = ", ".join(f"forecast:{k}" for k in FORECAST_SERIES)
        raise TaskError(f"unknown task 'forecast:{rest}'; known: {known} (add :H for H steps)")
    try:
        horizon = int(steps) if steps else 1
    except ValueError:
        horizon = 0
    if horizon < 1:
        raise TaskError(f"task 'forecast:{rest}': the horizon must be a positive integer")
    values, window = FORECAST_SERIES[base]
    name = f"forecast:{rest}" if steps else f"forecast:{base}"
    return forecast_task(name, values(), window, horizon, seed)


def _describe(rest: str) -> dict[str, Any]:
    task = _resolve(rest, 0)
    return {
        "name": task.name,
        "kind": task.kind,
        "input_shape": task.input_shape,
        "num_classes": 0,
        "horizon": task.horizon,
        "sizes": tuple(len(x) for x in (task.x_train, task.x_val, task.x_test)),
        "notes": "",
    }


register_resolver(
    "forecast",
    _resolve,
    lambda: [f"forecast:{k}" for k in FORECAST_SERIES] + ["forecast:Airline:12"],
    _describe,
)


@register_trainer("forecasting")
class ForecastingTrainer(SupervisedTrainer):
    """Trains a forecaster mapping ``(B, W, 1)`` windows to the next H values ``(B, H)``.

    Adam on MSE (standardised scale); the reward is ``1 / (1 + best val RMSE / scale)``.
    ``report`` gets ``val_loss`` (MSE, standardised), ``val_rmse`` and ``val_mae`` (series
    units).
    """

    metrics = ("rmse", "mae")
    reward_metrics = ("rmse",)
    lower_is_better = frozenset({"loss", "rmse", "mae"})
    ensemble_combine = "mean"  # no cross-validation here: averages only separate trainings

    def loss(self, output: torch.Tensor, target: torch.Tensor, task: Task) -> torch.Tensor:
        """MSE on the standardised scale."""
        return F.mse_loss(output.float(), target)

    @torch.no_grad()
    def evaluate(
        self,
        model: nn.Module,
        task: Task,
        x: torch.Tensor,
        y: torch.Tensor,
        lengths: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """MSE (``loss``, standardised), RMSE and MAE (series units) of ``model`` on ``(x, y)``."""
        scale = _scale(task)
        model.eval()
        preds = []
        for i in range(0, len(x), EVAL_BATCH_SIZE):
            with autocast(x.device):
                preds.append(forward(model, x, slice(i, i + EVAL_BATCH_SIZE), lengths).float())
        pred = torch.cat(preds)
        if pred.shape != y.shape:
            raise ValueError(
                f"model output has shape {tuple(pred.shape)}, expected {tuple(y.shape)}"
            )
        err = pred - y
        mse = err.pow(2).mean().item()
        return {"loss": mse, "rmse": math.sqrt(mse) * scale, "mae": err.abs().mean().item() * scale}

    def reward(self, val: dict[str, float], task: Task, metric: str) -> float:
        """``1 / (1 + RMSE / scale)``: in (0, 1], higher is better, scale-free."""
        return 1.0 / (1.0 + val["rmse"] / _scale(task))


def _scale(task: Task) -> float:
    return float(task.metadata.get("scale", 1.0))
