"""The function Ray Tune runs for each child: build, train, report, checkpoint."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from search.failures import ChildFailure
from search.model_files import ModelSpec, save_model_dir
from spaces.families import InvalidArchitecture, build_model, family_trainer
from trainers import configure_cpu_threads, get_trainer, load_task, pick_device
from trainers.augment import parse_augmentations

__all__ = ["train_child"]


def _trial_cpus() -> float:
    try:
        resources = tune.get_context().get_trial_resources()
        return float(resources.required_resources.get("CPU", 1))
    except Exception:  # outside a Tune session (direct calls in tests)
        return 1.0


def _task_name(setup: dict[str, Any]) -> str:
    """The task; a relative data-file path is taken from the driver's working directory
    (Tune runs each trial in its own directory)."""
    name = str(setup["task"])
    cwd = setup.get("cwd")
    if cwd and not os.path.isabs(name) and os.path.isfile(os.path.join(cwd, name)):
        return os.path.join(cwd, name)
    return name


def _reward_metric(setup: dict[str, Any], trainer) -> str | None:
    """The trainer's ``metric``: ``setup["metric"]``, or X when the reward expression is just
    ``val_X`` and X is a metric the trainer can reward (``--reward val_uar`` keeps the best-UAR
    epoch), else None (the trainer's default)."""
    if setup.get("metric"):
        return str(setup["metric"])
    expression = str(setup.get("reward_expression") or "").strip()
    choices = getattr(trainer, "reward_metrics", ())
    if expression.startswith("val_") and expression[4:] in choices:
        return expression[4:]
    return None


def train_child(config: dict[str, Any]) -> None:
    """Train one child.

    `config` holds ``architecture`` (from the controller) and ``setup`` (task, family, epochs,
    seeds, optimiser settings, space text, optionally ``metric``: the validation metric that is
    the reward, accuracy by default). Reports every epoch's metrics with ``reward`` = best
    validation metric so far, then a final result with ``final: True``, the trainer's final
    ``metrics`` (``val_*``, ``test_*``) as flat keys, and a checkpoint holding the model
    directory.
    """
    setup = config["setup"]
    architecture = config["architecture"]
    device = pick_device()
    if device.type == "cpu":
        configure_cpu_threads(_trial_cpus())
    task = load_task(_task_name(setup), seed=setup["data_seed"])
    try:
        model = build_model(setup["family"], architecture, task.input_shape, task.num_outputs)
    except InvalidArchitecture as exc:  # the driver checks first; this guards custom setups
        raise ChildFailure(f"cannot be built: {exc}") from exc
    trainer = get_trainer(family_trainer(setup["family"]) or task.kind)
    if setup.get("lr_schedule", "constant") != "constant":
        trainer.lr_schedule = setup["lr_schedule"]
    if setup.get("augment", "none") != "none":
        trainer.augment = parse_augmentations(setup["augment"])
    metric = _reward_metric(setup, trainer)
    best = {"value": 0.0}

    def report(metrics: dict[str, Any]) -> None:
        value = metrics.get("reward", 0.0)
        best["value"] = max(best["value"], float(value))
        tune.report({**metrics, "reward": best["value"], "final": False})

    options: dict[str, Any] = {"metric": metric} if metric else {}
    if getattr(trainer, "uses_reference", False):
        options["reference_dir"] = os.path.join(
            setup.get("cache_dir") or os.path.join(setup.get("cwd") or ".", "runs", "cache"),
            "reference",
        )
    result = trainer.fit(
        model,
        task,
        epochs=setup["epochs"],
        seed=config["train_seed"],
        device=device,
        batch_size=setup["batch_size"],
        lr=setup["lr"],
        report=report,
        **options,
    )
    final = {
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
    if not result.state_dict and not result.artifacts:  # nothing worth keeping
        tune.report(final)
        return
    with tempfile.TemporaryDirectory() as tmp:
        # model/ is the model directory; anything else (samples/...) is logged beside it
        if result.state_dict:
            spec = ModelSpec(
                setup["family"],
                task.input_shape,
                task.num_outputs,
                task.name,
                setup["space"],
                ensemble=result.ensemble,
                combine=result.ensemble_combine,
            )
            save_model_dir(
                Path(tmp, "model"),
                architecture,
                spec,
                result.state_dict,
                setup.get("space_text", ""),
            )
        for name, content in result.artifacts.items():
            path = Path(tmp, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(tmp))
