"""Sequence tasks: aeon's shipped UCR/UEA archives (offline) and user NPZ/CSV files."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers import TaskError, describe_task, list_tasks, load_task
from trainers.classification import classification_metrics
from trainers.sequences import archive_names

ARCHIVES = archive_names()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a task loader tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_the_named_archives_are_listed() -> None:
    for name in ("ucr:GunPoint", "ucr:ItalyPowerDemand", "uea:JapaneseVowels", "uea:BasicMotions"):
        assert name in ARCHIVES and name in list_tasks()


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", ARCHIVES)
def test_archive_loads_offline_and_matches_its_description(name: str) -> None:
    task = load_task(name, seed=0)
    info = describe_task(name)
    assert task.name == name and task.kind == "classification"
    assert task.input_shape == info["input_shape"] and len(task.input_shape) == 2
    assert task.num_classes == info["num_classes"]
    sizes = tuple(len(x) for x in (task.x_train, task.x_val, task.x_test))
    assert sizes == info["sizes"]
    for y in (task.y_train, task.y_val):  # validation is stratified: every class in both
        assert set(y.tolist()) == set(range(task.num_classes))
    for x in (task.x_train, task.x_val, task.x_test):
        assert torch.isfinite(x).all()


def test_validation_is_carved_from_train_and_test_is_the_archive_test() -> None:
    a, b = load_task("ucr:GunPoint", seed=0), load_task("ucr:GunPoint", seed=1)
    assert len(a.x_train) + len(a.x_val) == 50 and len(a.x_test) == 150
    assert torch.equal(a.y_test, b.y_test)  # the archive's test split, in its order
    # inputs are standardised with the (seed-dependent) training part's statistics only
    assert torch.allclose(
        a.x_test - a.x_test.mean(),
        (b.x_test - b.x_test.mean()) * (a.x_test.std() / b.x_test.std()),
        atol=1e-4,
    )
    assert not torch.equal(a.y_val, b.y_val) or not torch.equal(a.x_val, b.x_val)
    again = load_task("ucr:GunPoint", seed=0)
    assert torch.equal(a.x_val, again.x_val)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", ["ucr:ItalyPowerDemand", "uea:JapaneseVowels"])
def test_pooled_archive_is_train_and_test_split_again(name: str) -> None:
    plain, pooled = load_task(name, seed=0), load_task(f"{name}:pooled", seed=0)
    sizes = tuple(len(x) for x in (pooled.x_train, pooled.x_val, pooled.x_test))
    assert sizes == describe_task(f"{name}:pooled")["sizes"]
    assert pooled.name == f"{name}:pooled" and pooled.input_shape == plain.input_shape
    total = sum(len(x) for x in (plain.x_train, plain.x_val, plain.x_test))
    assert sum(sizes) == total and sizes[2] == -(-total // 5)  # 20 % test, rounded up
    assert sizes[1] == round(0.2 * (sizes[0] + sizes[1]))
    for y in (pooled.y_train, pooled.y_val, pooled.y_test):  # stratified
        assert set(y.tolist()) == set(range(pooled.num_classes))
    again, other = load_task(f"{name}:pooled", seed=0), load_task(f"{name}:pooled", seed=1)
    assert torch.equal(pooled.x_test, again.x_test)
    assert not torch.equal(pooled.y_test, other.y_test)  # the seed re-splits the pool
    with pytest.raises(TaskError, match="unknown task"):
        load_task("ucr:Nope:pooled")


def test_new_series_are_prepared_with_the_tasks_statistics(tmp_path: Path) -> None:
    raw_test = _series(6, channels=3, seed=1) * 5.0 + 2.0
    y = np.array(["a", "b"] * 10)
    path = tmp_path / "data.npz"
    np.savez(
        path, x_train=_series(20, channels=3) * 5.0 + 2.0, y_train=y, x_test=raw_test, y_test=y[:6]
    )
    task = load_task(str(path), seed=0)
    mean, std = np.array(task.metadata["mean"]), np.array(task.metadata["std"])
    assert mean.shape == std.shape == (3,)
    prepared = torch.from_numpy(((raw_test - mean) / std).astype(np.float32))
    assert torch.allclose(prepared, task.x_test, atol=1e-5)


def test_multivariate_and_unequal_length() -> None:
    motions = load_task("uea:BasicMotions")
    assert motions.input_shape == (100, 6) and motions.num_classes == 4
    assert motions.lengths == {}
    vowels = load_task("uea:JapaneseVowels")
    assert vowels.input_shape[1] == 12 and vowels.num_classes == 9
    assert vowels.metadata["unequal_length"]
    steps = vowels.input_shape[0]
    for split, x in (("train", vowels.x_train), ("test", vowels.x_test)):
        lengths = vowels.lengths[split]
        assert lengths.shape == (len(x),) and int(lengths.max()) <= steps
        assert int(lengths.min()) < steps
        i = int(lengths.argmin())
        assert (x[i, int(lengths[i]) :] == 0).all()  # padded with zeros at the end


def test_wrong_prefix_and_unknown_archive() -> None:
    with pytest.raises(TaskError, match="multivariate; use 'uea:JapaneseVowels'"):
        load_task("ucr:JapaneseVowels")
    with pytest.raises(TaskError, match="unknown task 'ucr:Nope'.*ucr:GunPoint"):
        load_task("ucr:Nope")


# ---------------------------------------------------------------- user files


def _series(n: int, steps: int = 10, channels: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (n, steps) if channels is None else (n, steps, channels)
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_npz_with_and_without_validation(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    y = np.array(["a", "b"] * 10)
    np.savez(
        path,
        x_train=_series(20, channels=3),
        y_train=y,
        x_test=_series(6, channels=3),
        y_test=y[:6],
    )
    task = load_task(str(path), seed=0)
    assert task.input_shape == (10, 3) and task.num_classes == 2
    assert len(task.x_train) + len(task.x_val) == 20 and len(task.x_test) == 6
    np.savez(
        path,
        x_train=_series(20),
        y_train=np.arange(20) % 3,
        x_test=_series(6),
        y_test=np.arange(6) % 3,
        x_val=_series(4),
        y_val=np.array([0, 1, 2, 0]),
    )
    task = load_task(str(path))
    assert task.input_shape == (10, 1) and task.num_classes == 3
    assert len(task.x_val) == 4 and task.metadata["validation"] == "given"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": _series(20), "y_train": np.arange(20) % 2}, "missing array"),
        (
            {
                "x_train": _series(20)[:, 0],
                "y_train": np.arange(20) % 2,
                "x_test": _series(4),
                "y_test": np.arange(4) % 2,
            },
            "x_train has shape",
        ),
        (
            {
                "x_train": np.full((20, 5), np.nan),
                "y_train": np.arange(20) % 2,
                "x_test": _series(4),
                "y_test": np.arange(4) % 2,
            },
            "NaN",
        ),
        (
            {
                "x_train": _series(20),
                "y_train": np.r_[np.zeros(19), 1],
                "x_test": _series(4),
                "y_test": np.arange(4) % 2,
            },
            "fewer than 2 training samples",
        ),
        (
            {
                "x_train": _series(20),
                "y_train": np.arange(19) % 2,
                "x_test": _series(4),
                "y_test": np.arange(4) % 2,
            },
            "20 series but 19 labels",
        ),
        (
            {
                "x_train": _series(20),
                "y_train": np.arange(20) % 2,
                "x_test": _series(4, 10, 2),
                "y_test": np.arange(4) % 2,
            },
            "channels",
        ),
    ],
)
def test_bad_npz_is_one_clear_task_error(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(TaskError, match=message) as info:
        load_task(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    for name in ("empty.npz", "empty.csv"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(TaskError, match=f"{name}: the file is empty"):
            load_task(str(tmp_path / name))
    with pytest.raises(TaskError, match="no such file"):
        load_task(str(tmp_path / "absent.npz"))


def test_csv_rows_with_header_and_unequal_lengths(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["label,t0,t1,t2,t3,t4,t5"]
    for i in range(30):
        n = 6 if i % 3 else 4
        values = ",".join(f"{v:.3f}" for v in rng.normal(size=n))
        lines.append(f"{'up' if i % 2 else 'down'},{values}" + ",," * (n == 4))
    path = tmp_path / "series.csv"
    path.write_text("\n".join(lines) + "\n")
    task = load_task(str(path), seed=0)
    assert task.input_shape == (6, 1) and task.num_classes == 2
    assert [len(x) for x in (task.x_train, task.x_val, task.x_test)] == [18, 6, 6]
    assert task.metadata["classes"] == ["down", "up"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,1,2\nb,1,x\n", "row 2 holds a non-numeric value"),
        ("a,1,2\nb,1,nan\n", "NaN"),
        ("a,1,2\n" * 10 + "b,1,2\n" * 2, "fewer than 5 rows"),
        ("a\nb\n", "no values"),
    ],
)
def test_bad_csv_is_one_clear_task_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TaskError, match=message) as info:
        load_task(str(path))
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- metrics


def test_classification_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))
    p[p == 3] = 2  # class 3 never predicted
    got = classification_metrics(torch.from_numpy(p), torch.from_numpy(y), 5)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert got["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
    assert got["uar"] == pytest.approx(recall_score(y, p, average="macro", zero_division=0))
