"""Tasks: the data a child model is trained and scored on.

A task is a named loader registered with `register_task`; `load_task(name, seed)` returns a
`Task` holding train/validation/test tensors. Validation data decides the reward; test data is
only ever reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["Task", "TaskError", "list_tasks", "load_task", "register_task", "stratified_split"]

TaskLoader = Callable[[int], "Task"]

_TASKS: dict[str, TaskLoader] = {}


class TaskError(ValueError):
    """An unknown task name, a duplicate registration or malformed task data."""


@dataclass(frozen=True, eq=False)
class Task:
    """A dataset split three ways, with the shapes a model builder needs.

    Attributes:
        name: Registry name of the task.
        kind: Objective kind; picks the trainer (e.g. ``"classification"``).
        input_shape: Shape of one input sample, without the batch dimension.
        num_classes: Number of classes; labels lie in ``[0, num_classes)``.
        x_train: Training inputs, float32, shape ``(N, *input_shape)``.
        y_train: Training labels, int64, shape ``(N,)``.
        x_val: Validation inputs (they decide the reward).
        y_val: Validation labels.
        x_test: Test inputs (reported only, never used to choose anything).
        y_test: Test labels.
        metadata: JSON-friendly facts about the task (source, seed, split fractions).
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    num_classes: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_outputs(self) -> int:
        """Width of the model's output layer for this task."""
        return self.num_classes

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            where = f"task {self.name!r}, {split} split"
            if x.dtype != torch.float32:
                raise TaskError(f"{where}: inputs must be float32, got {x.dtype}")
            if y.dtype != torch.int64:
                raise TaskError(f"{where}: labels must be int64, got {y.dtype}")
            if tuple(x.shape[1:]) != self.input_shape:
                raise TaskError(
                    f"{where}: input shape {tuple(x.shape[1:])} != input_shape {self.input_shape}"
                )
            if y.ndim != 1 or len(y) != len(x) or len(x) == 0:
                raise TaskError(
                    f"{where}: expected N > 0 inputs and N labels, got "
                    f"{tuple(x.shape)} and {tuple(y.shape)}"
                )
            if self.kind == "classification" and (
                int(y.min()) < 0 or int(y.max()) >= self.num_classes
            ):
                raise TaskError(f"{where}: labels must lie in [0, {self.num_classes})")


def register_task(name: str) -> Callable[[TaskLoader], TaskLoader]:
    """Register a task loader under ``name``.

    The loader takes a seed and returns a `Task`. Registering a name twice raises `TaskError`.
    """

    def decorator(loader: TaskLoader) -> TaskLoader:
        if name in _TASKS:
            raise TaskError(f"task {name!r} is already registered")
        _TASKS[name] = loader
        return loader

    return decorator


def list_tasks() -> list[str]:
    """Names of the registered tasks, sorted."""
    return sorted(_TASKS)


def load_task(name: str, seed: int = 0) -> Task:
    """Load a registered task; the same seed gives the same split.

    Raises:
        TaskError: If no task of that name is registered.
    """
    if name not in _TASKS:
        known = ", ".join(list_tasks()) or "none"
        raise TaskError(f"unknown task {name!r}; known tasks: {known}")
    task = _TASKS[name](seed)
    if not isinstance(task, Task):
        raise TaskError(f"loader of task {name!r} returned {type(task).__name__}, not Task")
    return task


def stratified_split(
    x: np.ndarray, y: np.ndarray, seed: int, val_fraction: float = 0.2, test_fraction: float = 0.2
) -> tuple[np.ndarray, ...]:
    """Split arrays into stratified train/val/test parts, seeded.

    Returns:
        ``(x_train, y_train, x_val, y_val, x_test, y_test)``.
    """
    from sklearn.model_selection import train_test_split

    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=val_fraction / (1.0 - test_fraction),
        stratify=y_rest,
        random_state=seed,
    )
    return x_train, y_train, x_val, y_val, x_test, y_test


@register_task("digits")
def _digits(seed: int) -> Task:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), split 60/20/20."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8) in [0, 1]
    y = data.target.astype(np.int64)
    parts = stratified_split(x, y, seed)
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in parts]
    return Task(
        name="digits",
        kind="classification",
        input_shape=(1, 8, 8),
        num_classes=10,
        x_train=tensors[0],
        y_train=tensors[1],
        x_val=tensors[2],
        y_val=tensors[3],
        x_test=tensors[4],
        y_test=tensors[5],
        metadata={"source": "sklearn.datasets.load_digits", "seed": seed, "split": [0.6, 0.2, 0.2]},
    )
