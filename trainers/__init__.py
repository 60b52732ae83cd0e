"""How a child model is trained and scored: tasks, device, trainers by task kind.

Typical use::

    task = load_task("digits", seed=0)
    result = get_trainer(task.kind).fit(model, task, TrainOptions(epochs=10, seed=0), print)
    result.reward  # best validation accuracy; test accuracy is reported, never rewarded

Generative families name their own trainer (``gan``, ``vae``; see
`spaces.families.family_trainer`); their samples are scored by `trainers.quality`.
"""

from __future__ import annotations

from trainers import forecasting, gan, sequences, vae, waveforms  # noqa: F401  (registering)
from trainers.base import (
    ReportFn,
    Trainer,
    TrainerError,
    TrainResult,
    count_parameters,
    get_trainer,
    list_trainers,
    register_trainer,
)
from trainers.classification import ClassificationTrainer
from trainers.device import (
    autocast,
    autocast_dtype,
    configure_cpu_threads,
    grad_scaler,
    pick_device,
    seed_everything,
)
from trainers.forecasting import ForecastingTrainer
from trainers.options import LR_SCHEDULES, TrainOptions
from trainers.tasks import (
    Task,
    TaskError,
    describe_task,
    list_tasks,
    load_task,
    register_resolver,
    register_task,
)

__all__ = [
    "ClassificationTrainer",
    "ForecastingTrainer",
    "LR_SCHEDULES",
    "ReportFn",
    "Task",
    "TaskError",
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "TrainerError",
    "autocast",
    "autocast_dtype",
    "configure_cpu_threads",
    "count_parameters",
    "describe_task",
    "get_trainer",
    "grad_scaler",
    "list_tasks",
    "list_trainers",
    "load_task",
    "pick_device",
    "register_resolver",
    "register_task",
    "register_trainer",
    "seed_everything",
]
