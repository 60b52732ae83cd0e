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
import time
from typing import Any

import numpy as np
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
from trainers.classification import _materialize_lazy
from trainers.device import autocast, grad_scaler, pick_device, seed_everything
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
        values = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=1)
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
class ForecastingTrainer(Trainer):
    """Trains a forecaster mapping ``(B, W, 1)`` windows to the next H values ``(B, H)``."""

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
        report: ReportFn | None = None,
    ) -> TrainResult:
        """Train ``model`` in place; the reward is ``1 / (1 + best val RMSE / scale)``.

        ``report`` gets ``epoch``, ``train_loss``, ``val_loss`` (MSE, standardised),
        ``val_rmse``, ``val_mae`` (series units) and ``reward`` (best so far) per epoch.
        """
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
        scale = float(task.metadata.get("scale", 1.0))
        x_train, y_train = task.x_train.to(dev), task.y_train.to(dev)
        x_val, y_val = task.x_val.to(dev), task.y_val.to(dev)
        _materialize_lazy(model, x_train[:2])
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        scaler = grad_scaler(dev)
        order = torch.Generator().manual_seed(seed)
        history: list[dict[str, Any]] = []
        best_value, best_epoch, best_state, best_val = 0.0, 0, None, {}
        diverged = False
        for epoch in range(1, epochs + 1):
            model.train()
            perm = torch.randperm(len(x_train), generator=order).to(dev)
            if len(perm) % batch_size == 1 and len(perm) > 1:
                perm = perm[:-1]
            loss_sum = torch.zeros((), device=dev)
            for i in range(0, len(perm), batch_size):
                idx = perm[i : i + batch_size]
                with autocast(dev):
                    pred = model(x_train[idx])
                loss = F.mse_loss(pred.float(), y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss.detach() * len(idx)
            train_loss = (loss_sum / len(perm)).item()
            val = _errors(model, x_val, y_val, scale) if math.isfinite(train_loss) else {}
            record = {"epoch": epoch, "train_loss": train_loss, "val_loss": math.nan}
            record.update({f"val_{k}": v for k, v in val.items()})
            if not val or not math.isfinite(val["loss"]):
                history.append(record)
                diverged = True
                break
            value = 1.0 / (1.0 + val["rmse"] / scale)
            if best_state is None or value > best_value:
                best_value, best_epoch, best_val = value, epoch, dict(val)
                best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
            record["reward"] = best_value
            history.append(record)
            if report is not None:
                report(dict(record))
        metrics = {f"val_{k}": best_val.get(k, math.nan) for k in ("rmse", "mae")}
        if best_state is not None:
            model.load_state_dict(best_state)
        if not diverged:
            test = _errors(model, task.x_test.to(dev), task.y_test.to(dev), scale)
            metrics.update({"test_rmse": test["rmse"], "test_mae": test["mae"]})
        model.eval()
        return TrainResult(
            reward=0.0 if diverged else best_value,
            val_accuracy=0.0,
            test_accuracy=None,
            best_epoch=best_epoch,
            epochs=len(history),
            params=count_parameters(model),
            train_seconds=time.perf_counter() - start,
            history=history,
            state_dict=best_state or {},
            diverged=diverged,
            metrics=metrics,
            metric="rmse",
        )


@torch.no_grad()
def _errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, scale: float) -> dict[str, float]:
    """MSE (standardised), RMSE and MAE (series units) of ``model`` on ``(x, y)``."""
    model.eval()
    preds = []
    for i in range(0, len(x), EVAL_BATCH_SIZE):
        with autocast(x.device):
            preds.append(model(x[i : i + EVAL_BATCH_SIZE]).float())
    pred = torch.cat(preds)
    if pred.shape != y.shape:
        raise ValueError(f"model output has shape {tuple(pred.shape)}, expected {tuple(y.shape)}")
    err = pred - y
    mse = err.pow(2).mean().item()
    return {"loss": mse, "rmse": math.sqrt(mse) * scale, "mae": err.abs().mean().item() * scale}
