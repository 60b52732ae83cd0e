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

__all__ = [
    "Task",
    "TaskError",
    "describe_task",
    "list_tasks",
    "load_task",
    "register_path_loader",
    "register_resolver",
    "register_task",
    "stratified_split",
]

TaskLoader = Callable[[int], "Task"]
Resolver = Callable[[str, int], "Task"]
"""``resolve(rest, seed)``: the task named ``prefix:rest``."""

_TASKS: dict[str, TaskLoader] = {}
_RESOLVERS: dict[str, tuple[Resolver, Callable[[], list[str]], Callable[[str], dict]]] = {}
_PATH_LOADERS: dict[str, Callable[[str, int], Task]] = {}


class TaskError(ValueError):
    """An unknown task name, a duplicate registration or malformed task data."""


@dataclass(frozen=True, eq=False)
class Task:
    """A dataset split three ways, with the shapes a model builder needs.

    Attributes:
        name: Registry name of the task.
        kind: Objective kind; picks the trainer (e.g. ``"classification"``).
        input_shape: Shape of one input sample, without the batch dimension.
        num_classes: Number of classes; labels lie in ``[0, num_classes)`` (0 for forecasting).
        x_train: Training inputs, float32, shape ``(N, *input_shape)``.
        y_train: Training labels, int64, shape ``(N,)``; for forecasting, float32 targets of
            shape ``(N, horizon)``.
        x_val: Validation inputs (they decide the reward).
        y_val: Validation labels.
        x_test: Test inputs (reported only, never used to choose anything).
        y_test: Test labels.
        metadata: JSON-friendly facts about the task (source, seed, split fractions).
        lengths: For padded sequence tasks, the true length of every series per split
            (``{"train": (N,), "val": ..., "test": ...}``, int64); empty when all series
            have the task's full length. Padding is zeros at the end of the series.
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
    lengths: dict[str, torch.Tensor] = field(default_factory=dict)
    horizon: int = 0
    """Forecasting tasks: steps predicted ahead (the model's output width); 0 otherwise."""

    @property
    def num_outputs(self) -> int:
        """Width of the model's output layer for this task."""
        return self.horizon if self.horizon else self.num_classes

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            where = f"task {self.name!r}, {split} split"
            if x.dtype != torch.float32:
                raise TaskError(f"{where}: inputs must be float32, got {x.dtype}")
            if y.dtype != torch.int64 and not (self.horizon and y.dtype == torch.float32):
                raise TaskError(f"{where}: labels must be int64, got {y.dtype}")
            if tuple(x.shape[1:]) != self.input_shape:
                raise TaskError(
                    f"{where}: input shape {tuple(x.shape[1:])} != input_shape {self.input_shape}"
                )
            if self.horizon and tuple(y.shape) != (len(x), self.horizon):
                raise TaskError(
                    f"{where}: expected targets of shape ({len(x)}, {self.horizon}), "
                    f"got {tuple(y.shape)}"
                )
            if not self.horizon and (y.ndim != 1 or len(y) != len(x)) or len(x) == 0:
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


def register_resolver(
    prefix: str,
    resolve: Resolver,
    names: Callable[[], list[str]],
    describe: Callable[[str], dict],
) -> None:
    """Register a family of tasks named ``prefix:rest`` (e.g. ``ucr:GunPoint``).

    Args:
        prefix: The part before the colon.
        resolve: ``resolve(rest, seed) -> Task``.
        names: Lists the full names (``prefix:rest``) it can resolve.
        describe: ``describe(rest)`` -> a summary dict as `describe_task` returns, cheaply.
    """
    if prefix in _RESOLVERS:
        raise TaskError(f"task prefix {prefix!r} is already registered")
    _RESOLVERS[prefix] = (resolve, names, describe)


def register_path_loader(suffix: str, loader: Callable[[str, int], Task]) -> None:
    """Register ``loader(path, seed)`` for user files whose name ends with ``suffix``."""
    if suffix in _PATH_LOADERS:
        raise TaskError(f"a loader for {suffix!r} files is already registered")
    _PATH_LOADERS[suffix] = loader


def list_tasks() -> list[str]:
    """Names of the registered tasks and of those the prefix resolvers know, sorted."""
    names = list(_TASKS)
    for _, list_names, _ in _RESOLVERS.values():
        names += list_names()
    return sorted(names, key=lambda n: (":" in n, n.lower()))


def describe_task(name: str) -> dict[str, Any]:
    """A summary of a task without loading it where that is cheap.

    Returns:
        ``name``, ``kind``, ``input_shape``, ``num_classes``, ``horizon`` (forecasting; 0
        otherwise), ``sizes`` (train, val, test) and ``notes`` (e.g. ``"unequal length, padded"``).
    """
    prefix, _, rest = name.partition(":")
    if name not in _TASKS and rest and prefix in _RESOLVERS:
        return _RESOLVERS[prefix][2](rest)
    task = load_task(name)
    return {
        "name": name,
        "kind": task.kind,
        "input_shape": tuple(task.input_shape),
        "num_classes": task.num_classes,
        "horizon": task.horizon,
        "sizes": tuple(len(x) for x in (task.x_train, task.x_val, task.x_test)),
        "notes": "",
    }


def load_task(name: str, seed: int = 0) -> Task:
    """Load a task; the same seed gives the same split.

    ``name`` is a registered name (``digits``), a prefixed archive name (``ucr:GunPoint``,
    ``uea:JapaneseVowels``) or the path of a user file (``.npz`` or ``.csv``).

    Raises:
        TaskError: If no task of that name is known, or its data is malformed.
    """
    prefix, _, rest = name.partition(":")
    suffix = next((s for s in _PATH_LOADERS if name.lower().endswith(s)), None)
    if name in _TASKS:
        task = _TASKS[name](seed)
    elif rest and prefix in _RESOLVERS:
        task = _RESOLVERS[prefix][0](rest, seed)
    elif suffix is not None:
        task = _PATH_LOADERS[suffix](name, seed)
    else:
        known = ", ".join(sorted(_TASKS) + [f"{p}:NAME" for p in sorted(_RESOLVERS)])
        files = ", ".join(sorted(_PATH_LOADERS))
        raise TaskError(
            f"unknown task {name!r}; known tasks: {known} (rlnas tasks lists them all), "
            f"or a file path ending in {files or 'nothing'}"
        )
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
