from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from trainers import Task, TaskError, list_tasks, load_task, register_task
from trainers import tasks as tasks_module


@pytest.fixture(scope="module")
def digits() -> Task:
    return load_task("digits", seed=0)


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test register tasks without leaking them into other tests."""
    monkeypatch.setattr(tasks_module, "_TASKS", dict(tasks_module._TASKS))


def _splits(task: Task) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(task.x_train, task.y_train), (task.x_val, task.y_val), (task.x_test, task.y_test)]


@pytest.mark.parametrize("name", list_tasks())
def test_every_registered_task_loads(name: str) -> None:
    task = load_task(name, seed=0)
    assert task.name == name
    for x, y in _splits(task):
        assert x.dtype == torch.float32
        assert y.dtype == (torch.float32 if task.kind == "forecasting" else torch.int64)
        assert tuple(x.shape[1:]) == task.input_shape
        assert len(x) == len(y) > 0


def test_digits_shapes_sizes_and_range(digits: Task) -> None:
    assert digits.kind == "classification"
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10
    assert [len(x) for x, _ in _splits(digits)] == [1077, 360, 360]  # 60/20/20 of 1797
    for x, _ in _splits(digits):
        assert x.min() >= 0.0 and x.max() <= 1.0


def test_digits_splits_are_stratified(digits: Task) -> None:
    overall = torch.bincount(torch.cat([y for _, y in _splits(digits)]), minlength=10).double()
    overall /= overall.sum()
    for _, y in _splits(digits):
        share = torch.bincount(y, minlength=10).double() / len(y)
        assert torch.allclose(share, overall, atol=0.01)


def test_digits_splits_partition_the_dataset(digits: Task) -> None:
    """Train, val and test are disjoint and together hold every sample exactly once."""
    from sklearn.datasets import load_digits

    data = load_digits()
    original = Counter(
        (row.astype(np.float32) / 16.0).tobytes() + bytes([label])
        for row, label in zip(data.data, data.target, strict=True)
    )
    combined = Counter(
        row.numpy().tobytes() + bytes([int(label)])
        for x, y in _splits(digits)
        for row, label in zip(x.reshape(len(x), -1), y, strict=True)
    )
    assert combined == original


def test_same_seed_same_split_other_seed_other_split(digits: Task) -> None:
    again = load_task("digits", seed=0)
    for (x1, y1), (x2, y2) in zip(_splits(digits), _splits(again), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    other = load_task("digits", seed=1)
    assert not torch.equal(digits.x_train, other.x_train)


def test_unknown_task_names_it_and_lists_known() -> None:
    with pytest.raises(TaskError, match=r"unknown task 'nope'.*digits"):
        load_task("nope")
    assert issubclass(TaskError, ValueError)


@pytest.mark.usefixtures("isolated_registry")
def test_register_and_duplicate_registration() -> None:
    @register_task("toy")
    def toy(seed: int) -> Task:
        x = torch.rand(4, 3, generator=torch.Generator().manual_seed(seed))
        y = torch.tensor([0, 1, 0, 1])
        return Task("toy", "classification", (3,), 2, x, y, x, y, x, y)

    assert "toy" in list_tasks()
    assert torch.equal(load_task("toy", seed=3).x_train, load_task("toy", seed=3).x_train)
    with pytest.raises(TaskError, match="already registered"):
        register_task("toy")(toy)
    with pytest.raises(TaskError, match="already registered"):
        register_task("digits")(toy)


def test_task_rejects_malformed_data() -> None:
    x, y = torch.rand(4, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(TaskError, match="float32"):
        Task("bad", "classification", (3,), 2, x.double(), y, x, y, x, y)
    with pytest.raises(TaskError, match="int64"):
        Task("bad", "classification", (3,), 2, x, y.int(), x, y, x, y)
    with pytest.raises(TaskError, match="input_shape"):
        Task("bad", "classification", (4,), 2, x, y, x, y, x, y)
    with pytest.raises(TaskError, match=r"\[0, 2\)"):
        Task("bad", "classification", (3,), 2, x, y + 1, x, y, x, y)
