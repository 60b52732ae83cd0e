"""The function Ray Tune runs for each child: build, train, report, checkpoint."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import torch
from ray import tune

from search.child_setup import ChildSetup
from search.failures import ChildFailure
from search.model_files import ModelSpec, save_model_dir
from spaces.families import InvalidArchitecture, build_model, family_trainer
from trainers import (
    ReportFn,
    Task,
    Trainer,
    TrainResult,
    configure_cpu_threads,
    count_parameters,
    get_trainer,
    load_task,
    pick_device,
)

__all__ = ["train_child"]


def _trial_cpus() -> float:
    try:
        resources = tune.get_context().get_trial_resources()
        return float(resources.required_resources.get("CPU", 1))
    except Exception:  # outside a Tune session (direct calls in tests)
        return 1.0


def train_child(config: dict[str, Any]) -> None:
    """Train one child.

    `config` holds ``architecture`` (from the controller), ``train_seed`` and ``setup`` (a
    `ChildSetup`). Reports every epoch's metrics with ``reward`` = best validation metric so
    far, then a final result with ``final: True``, the trainer's final ``metrics`` (``val_*``,
    ``test_*``) as flat keys, and a checkpoint holding the model directory.
    """
    setup: ChildSetup = config["setup"]
    architecture = config["architecture"]
    device = pick_device()
    if device.type == "cpu":
        configure_cpu_threads(_trial_cpus())
    task = _load_task(setup.task_path(), setup.data_seed)
    try:
        model = build_model(setup.family, architecture, task.input_shape, task.num_outputs)
    except InvalidArchitecture as exc:  # the driver checks first; this guards custom setups
        raise ChildFailure(f"cannot be built: {exc}") from exc
    trainer = get_trainer(family_trainer(setup.family) or task.kind)
    options = setup.train_options(trainer, config["train_seed"], device)
    result = trainer.fit(model, task, options, _best_so_far(count_parameters(model)))
    final = _final_metrics(result, trainer, device)
    if not result.state_dict and not result.artifacts:  # nothing worth keeping
        tune.report(final)
        return
    with tempfile.TemporaryDirectory() as tmp:
        _save_child(Path(tmp), result, setup, task, architecture)
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))


@functools.lru_cache(maxsize=2)
def _load_task(path: str, seed: int) -> Task:
    """The task, loaded once per worker process: Tune keeps a worker between children
    (``reuse_actors``), and a `Task` is frozen (trainers only read it)."""
    return load_task(path, seed=seed)


def _best_so_far(params: int) -> ReportFn:
    """Reports each epoch to Tune with ``reward`` = the best reward so far, and the child's
    ``params`` (so that a child an early-stopping scheduler stops has its size too)."""
    best = 0.0

    def report(metrics: dict[str, Any]) -> None:
        nonlocal best
        best = max(best, float(metrics.get("reward", 0.0)))
        tune.report({**metrics, "params": params, "reward": best, "final": False})

    return report


def _final_metrics(result: TrainResult, trainer: Trainer, device: torch.device) -> dict[str, Any]:
    """The child's final report: its metrics, reward, size, time and why it failed (if so)."""
    final: dict[str, Any] = {
        **result.metrics,
        "reward": result.reward,
        "params": result.params,
        "train_seconds": result.train_seconds,
        "best_epoch": result.best_epoch,
        "diverged": result.diverged,
        "device": str(device),
        "test_metric": f"test_{result.metric}",
        "failure": result.failure,
        "final": True,
    }
    if result.diverged and not result.failure:
        final["failure"] = (
            f"diverged: a loss became NaN or infinite at epoch {result.epochs}, training stopped"
        )
    if trainer.kind == "classification":
        final["val_accuracy"] = result.val_accuracy
        final["test_accuracy"] = (
            result.test_accuracy if result.test_accuracy is not None else float("nan")
        )
    return final


def _save_child(
    folder: Path, result: TrainResult, setup: ChildSetup, task: Task, architecture: dict[str, Any]
) -> None:
    """``folder/model`` as the model directory of the kept weights (if any), and the result's
    other artifacts (``samples/...``) beside it."""
    if result.state_dict:
        spec = ModelSpec(
            setup.family,
            task.input_shape,
            task.num_outputs,
            task.name,
            setup.space,
            ensemble=result.ensemble,
            combine=result.ensemble_combine,
        )
        save_model_dir(folder / "model", architecture, spec, result.state_dict, setup.space_text)
    for name, content in result.artifacts.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
