"""The function Ray Tune runs for each child: build, train, report, checkpoint."""

from __future__ import annotations

import tempfile
from typing import Any

from ray import tune

from search.model_files import ModelSpec, save_model_dir
from spaces.families import InvalidArchitecture, build_model
from trainers import configure_cpu_threads, get_trainer, load_task, pick_device

__all__ = ["train_child"]


def _trial_cpus() -> float:
    try:
        resources = tune.get_context().get_trial_resources()
        return float(resources.required_resources.get("CPU", 1))
    except Exception:  # outside a Tune session (direct calls in tests)
        return 1.0


def train_child(config: dict[str, Any]) -> None:
    """Train one child.

    `config` holds ``architecture`` (from the controller) and ``setup`` (task, family, epochs,
    seeds, optimiser settings, space text). Reports every epoch's metrics with ``reward`` = best
    validation accuracy so far, then a final result with ``final: True`` and a checkpoint
    holding the model directory.
    """
    setup = config["setup"]
    architecture = config["architecture"]
    device = pick_device()
    if device.type == "cpu":
        configure_cpu_threads(_trial_cpus())
    task = load_task(setup["task"], seed=setup["data_seed"])
    try:
        model = build_model(setup["family"], architecture, task.input_shape, task.num_outputs)
    except InvalidArchitecture as exc:  # the driver checks first; this guards custom setups
        tune.report({"reward": 0.0, "final": True, "invalid": True, "error": str(exc)})
        return
    best = {"value": 0.0}

    def report(metrics: dict[str, Any]) -> None:
        best["value"] = max(best["value"], float(metrics.get("val_accuracy", 0.0)))
        tune.report({**metrics, "reward": best["value"], "final": False})

    trainer = get_trainer(task.kind)
    result = trainer.fit(
        model,
        task,
        epochs=setup["epochs"],
        seed=config["train_seed"],
        device=device,
        batch_size=setup["batch_size"],
        lr=setup["lr"],
        report=report,
    )
    final = {
        "reward": result.reward,
        "val_accuracy": result.val_accuracy,
        "test_accuracy": result.test_accuracy if result.test_accuracy is not None else float("nan"),
        "params": result.params,
        "train_seconds": result.train_seconds,
        "best_epoch": result.best_epoch,
        "diverged": result.diverged,
        "device": str(device),
        "final": True,
    }
    if not result.state_dict:  # diverged before any epoch finished: nothing worth keeping
        tune.report(final)
        return
    spec = ModelSpec(setup["family"], task.input_shape, task.num_outputs, task.name, setup["space"])
    with tempfile.TemporaryDirectory() as tmp:
        save_model_dir(tmp, architecture, spec, result.state_dict, setup.get("space_text", ""))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
