"""Sequence classification tasks: aeon's shipped UCR/UEA archives and user NPZ/CSV files.

Every series becomes a ``(T, F)`` float32 array (time steps, channels). Series of unequal
length are padded with zeros at the end to the longest series of the task, and their true
lengths are kept in `Task.lengths` (models may ignore them; padding is zeros after per-channel
standardisation, so it reads as "the mean value").

- ``ucr:NAME`` (univariate) and ``uea:NAME`` (multivariate) name the classification archives
  aeon ships under ``aeon/datasets/data/`` (``rlnas tasks`` lists them). They are read offline
  from the package; nothing is downloaded. The validation split is carved from the archive's
  train split (stratified, seeded); the archive's test split is only ever reported.
  ``ucr:NAME:pooled`` (and ``uea:``) pools the archive's train and test splits and splits them
  again: 20 % test, then 20 % of the rest for validation (stratified, seeded), for archives
  whose own train split is too small to validate on (ItalyPowerDemand: 67 series).
- ``*.npz`` holds ``x_train, y_train, x_test, y_test`` and optionally ``x_val, y_val``;
  inputs are ``(N, T)`` or ``(N, T, F)`` numeric arrays, labels integers or strings.
- ``*.csv`` holds one series per row: the label first, then the values (univariate); rows may
  end early (empty cells) for shorter series. An optional header row (a non-numeric second
  cell) is skipped. The file is split 60/20/20 train/val/test, stratified and seeded.

Inputs are standardised per channel with the mean and standard deviation of the training
split (valid steps only); both are kept in ``Task.metadata`` (``mean``, ``std``: one value
per channel) so that new series can be prepared the same way.
"""

from __future__ import annotations

import functools
import math
import reprlib
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainers.tasks import (
    Task,
    TaskError,
    register_path_loader,
    register_resolver,
    stratified_split,
)

__all__ = ["AEON_DATA_DIR", "archive_names", "pad_series", "sequence_task"]

VAL_FRACTION = 0.2
POOLED = "pooled"
"""The suffix of an archive's name (``ucr:NAME:pooled``) for its splits pooled and re-split."""
POOLED_TEST_FRACTION = 0.2

# What numpy and zipfile raise on a damaged or foreign .npz file (MemoryError: a header that
# claims an array larger than memory).
_NPZ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    RuntimeError,
    NotImplementedError,
    MemoryError,
    OverflowError,
    zipfile.BadZipFile,
    zlib.error,
)
_LABEL_KINDS = "biufUS"  # bool, integer, float, text and bytes labels
_NUMBER_KINDS = "biufUS"  # text and bytes inputs must parse as numbers

_SHOW = reprlib.Repr()
_SHOW.maxlist, _SHOW.maxstring, _SHOW.maxother = 5, 40, 40


def _show(value: Any) -> str:
    """A short one-line repr of values from a user's file (labels may be long)."""
    return _SHOW.repr(value)


def _aeon_data_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent-aeon")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


AEON_DATA_DIR = _aeon_data_dir()
"""Where aeon keeps its shipped datasets (found without importing aeon)."""


# ---------------------------------------------------------------- archive headers (cheap)


@functools.cache
def _header(path: Path) -> dict[str, Any]:
    """Facts from a .ts file without parsing values: labels, channels, cases, longest length."""
    info: dict[str, Any] = {"labels": None, "channels": 1, "cases": 0, "length": 0}
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    parts = line.split()
                    if len(parts) > 1 and parts[1].lower() == "true":
                        info["labels"] = parts[2:]
                elif low.startswith("@dimensions"):
                    info["channels"] = int(line.split()[1])
                elif low.startswith("@data"):
                    in_data = True
                continue
            info["cases"] += 1
            first = line.split(":", 1)[0]
            info["length"] = max(info["length"], first.count(",") + 1)
    return info


@functools.lru_cache(maxsize=1)
def _archives() -> dict[str, tuple[str, Path, Path]]:
    """``{"ucr:GunPoint": ("ucr", train_path, test_path), ...}`` for shipped classification sets."""
    found: dict[str, tuple[str, Path, Path]] = {}
    if not AEON_DATA_DIR.is_dir():
        return found
    for folder in sorted(AEON_DATA_DIR.iterdir()):
        for train in sorted(folder.glob("*_TRAIN.ts")):
            stem = train.name[: -len("_TRAIN.ts")]
            test = folder / f"{stem}_TEST.ts"
            if not test.exists() or stem.endswith("_eq"):
                continue
            try:
                info = _header(train)
            except (OSError, ValueError, IndexError):
                continue
            if not info["labels"]:
                continue  # regression or unlabelled
            prefix = "ucr" if info["channels"] == 1 else "uea"
            found[f"{prefix}:{stem}"] = (prefix, train, test)
    return found


def archive_names() -> list[str]:
    """Names (``ucr:GunPoint``, ``uea:BasicMotions``, ...) of the shipped archives, sorted."""
    return sorted(_archives())


def _pooled(rest: str) -> tuple[str, bool]:
    """The archive's name in ``NAME`` or ``NAME:pooled``, and whether it is pooled."""
    name, sep, suffix = rest.rpartition(":")
    return (name, True) if sep and suffix == POOLED else (rest, False)


def _pooled_test_count(n: int) -> int:
    return math.ceil(POOLED_TEST_FRACTION * n)  # as scikit-learn's train_test_split


def _lookup(prefix: str, rest: str) -> tuple[Path, Path]:
    rest = _pooled(rest)[0]
    archives = _archives()
    name = f"{prefix}:{rest}"
    if name in archives:
        return archives[name][1], archives[name][2]
    other = f"{'uea' if prefix == 'ucr' else 'ucr'}:{rest}"
    if other in archives:
        kind = "multivariate" if prefix == "ucr" else "univariate"
        raise TaskError(f"task {name!r}: {rest} is {kind}; use {other!r}")
    known = ", ".join(n for n in archives if n.startswith(prefix + ":")) or "none"
    raise TaskError(f"unknown task {name!r}; aeon ships these {prefix} archives: {known}")


def _val_count(n: int, classes: int) -> int:
    return max(classes, round(VAL_FRACTION * n))


def _describe_archive(prefix: str, rest: str) -> dict[str, Any]:
    train, test = _lookup(prefix, rest)
    head, test_head = _header(train), _header(test)
    length = max(head["length"], test_head["length"])
    n_train, n_test = head["cases"], test_head["cases"]
    if _pooled(rest)[1]:
        n_test = _pooled_test_count(n_train + n_test)
        n_train = head["cases"] + test_head["cases"] - n_test
    n_val = _val_count(n_train, len(head["labels"]))
    unequal = head["length"] != test_head["length"] or _unequal(train)
    return {
        "name": f"{prefix}:{rest}",
        "kind": "classification",
        "input_shape": (length, head["channels"]),
        "num_classes": len(head["labels"]),
        "sizes": (n_train - n_val, n_val, n_test),
        "notes": "unequal length, padded" if unequal else "",
    }


@functools.cache
def _unequal(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            low = line.strip().lower()
            if low.startswith("@equallength"):
                return low.split()[1] == "false"
            if low.startswith("@data"):
                break
    return False


@functools.lru_cache(maxsize=16)
def _read_ts(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Series as (T, F) arrays and labels as strings, read from the installed file."""
    from aeon.datasets import load_from_ts_file  # reads the local file only

    x, y = load_from_ts_file(str(path))
    series = [np.asarray(s, dtype=np.float32).T for s in x]  # (C, T) -> (T, C)
    return series, np.asarray(y).astype(str)


def _resolver(prefix: str):
    def resolve(rest: str, seed: int) -> Task:
        train, test = _lookup(prefix, rest)
        x_tr, y_tr = _read_ts(train)
        x_te, y_te = _read_ts(test)
        pooled = _pooled(rest)[1]
        if pooled:
            x_tr, y_tr, x_te, y_te = _pool(x_tr, y_tr, x_te, y_te, seed)
        return sequence_task(
            f"{prefix}:{rest}",
            x_tr,
            y_tr,
            x_te,
            y_te,
            seed=seed,
            source=f"aeon shipped archive {train.parent.name}"
            + (", train and test pooled and re-split" if pooled else ""),
            where=f"task {prefix}:{rest}",
        )

    return resolve


def _pool(
    x_tr: list[np.ndarray], y_tr: np.ndarray, x_te: list[np.ndarray], y_te: np.ndarray, seed: int
) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]:
    """Train and test series pooled, then split again: `POOLED_TEST_FRACTION` test, the rest
    train (stratified, seeded)."""
    from sklearn.model_selection import train_test_split

    x, y = [*x_tr, *x_te], np.concatenate([y_tr, y_te])
    train, test = train_test_split(
        np.arange(len(y)), test_size=POOLED_TEST_FRACTION, stratify=y, random_state=seed
    )
    return [x[i] for i in train], y[train], [x[i] for i in test], y[test]


def _archive_names_of(prefix: str) -> list[str]:
    return [n for n in archive_names() if n.startswith(prefix + ":")]


for _prefix in ("ucr", "uea"):
    register_resolver(
        _prefix,
        _resolver(_prefix),
        functools.partial(_archive_names_of, _prefix),
        functools.partial(_describe_archive, _prefix),
    )


# ---------------------------------------------------------------- building a task


def pad_series(series: Sequence[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack (T_i, F) arrays into (N, length, F), zero-padded at the end; also the lengths."""
    channels = series[0].shape[1]
    out = np.zeros((len(series), length, channels), dtype=np.float32)
    lengths = np.zeros(len(series), dtype=np.int64)
    for i, s in enumerate(series):
        out[i, : len(s)] = s[:length]
        lengths[i] = min(len(s), length)
    return out, lengths


def _label_order(labels: np.ndarray) -> list[str]:
    def key(label: str) -> tuple[int, float, str]:
        try:
            return (0, float(label), label)
        except ValueError:
            return (1, 0.0, label)

    return sorted({str(v) for v in labels}, key=key)


def _check_series(series: Sequence[np.ndarray], where: str, split: str) -> None:
    if len(series) == 0:
        raise TaskError(f"{where}: the {split} split is empty")
    channels = series[0].shape[1] if series[0].ndim == 2 else None
    for i, s in enumerate(series):
        if s.ndim != 2 or s.shape[1] != channels or s.shape[0] == 0:
            raise TaskError(
                f"{where}: {split} series {i} has shape {s.shape}; expected (T, {channels}) "
                "with T >= 1 and the same channels as the others"
            )
        if not np.isfinite(s).all():
            raise TaskError(f"{where}: {split} series {i} holds NaN or infinite values")


_Parts = dict[str, tuple[list[np.ndarray], np.ndarray]]
"""Series and their (string) labels by split name."""


def sequence_task(
    name: str,
    x_train: Sequence[np.ndarray],
    y_train: np.ndarray,
    x_test: Sequence[np.ndarray],
    y_test: np.ndarray,
    *,
    seed: int,
    x_val: Sequence[np.ndarray] | None = None,
    y_val: np.ndarray | None = None,
    source: str = "",
    where: str = "",
) -> Task:
    """A classification `Task` from lists of (T, F) series and their labels.

    Without ``x_val``, validation (20 %, at least one per class) is carved from the training
    series, stratified and seeded. Labels (any type) map to ``0..C-1`` in sorted order.

    Raises:
        TaskError: Mismatched shapes, NaNs, an empty split, unknown test labels, or a class
            with too few training samples for the split; the message starts with ``where``.
    """
    where = where or f"task {name!r}"
    parts: _Parts = {
        "train": (list(x_train), np.asarray(y_train).astype(str)),
        "test": (list(x_test), np.asarray(y_test).astype(str)),
    }
    if x_val is not None:
        parts["val"] = (list(x_val), np.asarray(y_val).astype(str))
    channels = _check_parts(parts, where)
    classes = _label_order(parts["train"][1])
    _check_labels(parts, classes, where)
    if x_val is None:
        parts = _carve_validation(parts, classes, seed, where)
    length = max(len(s) for xs, _ in parts.values() for s in xs)
    standard = _Standardised.of(parts, classes, length)
    return Task(
        name=name,
        kind="classification",
        input_shape=(length, channels),
        num_classes=len(classes),
        x_train=standard.tensors["train"][0],
        y_train=standard.tensors["train"][1],
        x_val=standard.tensors["val"][0],
        y_val=standard.tensors["val"][1],
        x_test=standard.tensors["test"][0],
        y_test=standard.tensors["test"][1],
        metadata={
            "source": source,
            "seed": seed,
            "classes": classes,
            "unequal_length": standard.unequal,
            "validation": "given" if x_val is not None else "carved from train (stratified)",
            # what new series need before they reach a model trained on this task
            "mean": standard.mean.astype(float).tolist(),
            "std": standard.std.astype(float).tolist(),
        },
        lengths=standard.lengths if standard.unequal else {},
    )


def _check_parts(parts: _Parts, where: str) -> int:
    """The channels every split's series share; raises `TaskError` on a malformed split."""
    for split, (xs, ys) in parts.items():
        _check_series(xs, where, split)
        if len(xs) != len(ys):
            raise TaskError(f"{where}: {split} has {len(xs)} series but {len(ys)} labels")
    channels = {xs[0].shape[1] for xs, _ in parts.values()}
    if len(channels) != 1:
        raise TaskError(f"{where}: splits disagree on the number of channels: {sorted(channels)}")
    return next(iter(channels))


def _check_labels(parts: _Parts, classes: list[str], where: str) -> None:
    """At least two training classes, and no label another split holds that training lacks."""
    if len(classes) < 2:
        raise TaskError(f"{where}: training labels hold {len(classes)} class; need at least 2")
    for split, (_, ys) in parts.items():
        unknown = sorted(str(u) for u in set(ys) - set(classes))
        if unknown:
            raise TaskError(f"{where}: {split} labels {_show(unknown[:5])} never occur in training")


def _carve_validation(parts: _Parts, classes: list[str], seed: int, where: str) -> _Parts:
    """``parts`` with a stratified, seeded validation split carved from the training one."""
    xs, y_train = parts["train"]
    counts = {c: int((y_train == c).sum()) for c in classes}
    few = [c for c, n in counts.items() if n < 2]
    if few:
        raise TaskError(
            f"{where}: class(es) {_show(few[:5])} have fewer than 2 training samples; "
            "cannot carve a stratified validation split (add samples or give x_val/y_val)"
        )
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y_train))
    n_val = _val_count(len(idx), len(classes))
    if len(idx) - n_val < len(classes):
        raise TaskError(
            f"{where}: {len(idx)} training samples are too few to keep one per class "
            f"in both train and validation ({len(classes)} classes)"
        )
    tr, va = train_test_split(idx, test_size=n_val, stratify=y_train, random_state=seed)
    return {
        **parts,
        "val": ([xs[i] for i in va], y_train[va]),
        "train": ([xs[i] for i in tr], y_train[tr]),
    }


@dataclass
class _Standardised:
    """Every split standardised per channel with training statistics (valid steps only),
    padded to one length, as tensors; labels as class indices."""

    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    lengths: dict[str, torch.Tensor]
    unequal: bool
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, parts: _Parts, classes: list[str], length: int) -> _Standardised:
        index = {c: i for i, c in enumerate(classes)}
        stacked = np.concatenate(parts["train"][0], axis=0)  # (sum T, F)
        mean, std = stacked.mean(axis=0), stacked.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        lengths: dict[str, torch.Tensor] = {}
        unequal = False
        for split in ("train", "val", "test"):
            xs, ys = parts[split]
            x, lens = pad_series([(s - mean) / std for s in xs], length)
            unequal = unequal or bool((lens != length).any())
            labels = np.array([index[v] for v in ys], dtype=np.int64)
            tensors[split] = (torch.from_numpy(x), torch.from_numpy(labels))
            lengths[split] = torch.from_numpy(lens)
        return cls(tensors, lengths, unequal, mean, std)


# ---------------------------------------------------------------- user files


def _as_series(x: Any, where: str, key: str) -> list[np.ndarray]:
    kind = getattr(getattr(x, "dtype", None), "kind", "O")
    if kind not in _NUMBER_KINDS:
        raise TaskError(f"{where}: {key} has dtype {x.dtype}; expected numbers")
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, caught below
            arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:100]
        raise TaskError(f"{where}: {key} is not numeric ({reason})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or 0 in arr.shape:
        raise TaskError(
            f"{where}: {key} has shape {arr.shape}; expected (N, T) or (N, T, F) with N, T, F > 0"
        )
    if not np.isfinite(arr).all():
        raise TaskError(
            f"{where}: {key} holds NaN or infinite values (or values beyond float32's range)"
        )
    return list(arr)


def load_npz(path: str, seed: int) -> Task:
    """A classification task from an ``.npz`` file (see the module docstring)."""
    where = f"task file {path}"
    file = Path(path)
    if not file.is_file():
        raise TaskError(f"{where}: no such file")
    if file.stat().st_size == 0:
        raise TaskError(f"{where}: the file is empty")
    try:
        with open(file, "rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise TaskError(f"{where}: cannot read the file ({exc.strerror})") from None
    if not head.startswith((b"PK", b"\x93NUMPY")):  # numpy's own message speaks of pickles
        raise TaskError(f"{where}: not an .npz archive; expected a zip file written by numpy.savez")
    try:
        data = np.load(file, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise TaskError(f"{where}: not a readable .npz file ({_reason(exc)})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise TaskError(
            f"{where}: holds one array (a .npy file); expected an .npz archive of x_train, "
            "y_train, x_test, y_test (numpy.savez)"
        )
    arrays: dict[str, np.ndarray] = {}
    with data:
        for key in data.files:
            try:
                value = data[key]
            except _NPZ_ERRORS as exc:
                raise TaskError(
                    f"{where}: {key} is not a readable array ({_reason(exc)})"
                ) from None
            if not isinstance(value, np.ndarray):  # a member that is no .npy file
                raise TaskError(f"{where}: {key} is not a NumPy array; expected numpy.savez arrays")
            arrays[key] = value
    need = ["x_train", "y_train", "x_test", "y_test"]
    missing = [k for k in need if k not in arrays]
    if ("x_val" in arrays) != ("y_val" in arrays):
        missing.append("y_val" if "x_val" in arrays else "x_val")
    if missing:
        raise TaskError(
            f"{where}: missing array(s) {', '.join(missing)}; expected x_train, y_train, "
            f"x_test, y_test[, x_val, y_val]; found {', '.join(sorted(arrays)) or 'none'}"
        )
    series = {}
    for key in [k for k in ("x_train", "x_val", "x_test") if k in arrays]:
        series[key] = _as_series(arrays[key], where, key)
    labels = {}
    for key in [k for k in ("y_train", "y_val", "y_test") if k in arrays]:
        y = arrays[key]
        if y.ndim != 1:
            raise TaskError(f"{where}: {key} has shape {y.shape}; expected (N,)")
        if y.dtype.kind not in _LABEL_KINDS:
            raise TaskError(f"{where}: {key} has dtype {y.dtype}; expected integer or text labels")
        if y.dtype.kind == "S":
            try:
                y = np.char.decode(y, "utf-8")
            except UnicodeDecodeError:
                raise TaskError(
                    f"{where}: {key} holds bytes that are not UTF-8 text; expected integer or "
                    "text labels"
                ) from None
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise TaskError(f"{where}: {key} holds NaN or infinite labels")
        # whole floats are integers, as long as int64 holds each of them exactly
        if y.dtype.kind == "f" and np.all(y == np.round(y)) and np.all(np.abs(y) < 2**53):
            y = y.astype(np.int64)
        labels[key] = y
    return sequence_task(
        file.name,
        series["x_train"],
        labels["y_train"],
        series["x_test"],
        labels["y_test"],
        x_val=series.get("x_val"),
        y_val=labels.get("y_val"),
        seed=seed,
        source=str(file),
        where=where,
    )


def load_csv(path: str, seed: int) -> Task:
    """A classification task from a ``.csv`` file (see the module docstring)."""
    import csv

    where = f"task file {path}"
    file = Path(path)
    if not file.is_file():
        raise TaskError(f"{where}: no such file")
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is no part of the first label
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                rows = [row for row in reader if any(cell.strip() for cell in row)]
            except csv.Error as exc:
                raise TaskError(
                    f"{where}: line {reader.line_num} is not CSV ({exc}); expected a label, "
                    "then comma-separated values"
                ) from None
    except UnicodeDecodeError as exc:
        raise TaskError(
            f"{where}: not UTF-8 text (byte {exc.start}); expected a CSV file"
        ) from None
    except OSError as exc:
        raise TaskError(f"{where}: cannot read the file ({exc.strerror})") from None
    if not rows:
        raise TaskError(f"{where}: the file is empty")
    if len(rows[0]) > 1 and not _is_number(rows[0][1]):
        rows = rows[1:]  # header
    if not rows:
        raise TaskError(f"{where}: a header row only; expected a series per row after it")
    labels, series = [], []
    for line, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        if len(cells) < 2:
            raise TaskError(f"{where}: row {line} has a label but no values")
        try:
            values = np.array([float(c) for c in cells[1:]], dtype=np.float32)
        except ValueError:
            raise TaskError(f"{where}: row {line} holds a non-numeric value") from None
        if not np.isfinite(values).all():
            raise TaskError(f"{where}: row {line} holds NaN or infinite values")
        labels.append(cells[0])
        series.append(values[:, None])
    y = np.asarray(labels)
    counts = {c: int((y == c).sum()) for c in set(labels)}
    few = sorted(c for c, n in counts.items() if n < 5)
    if few:
        raise TaskError(
            f"{where}: class(es) {_show(few[:5])} have fewer than 5 rows; a stratified 60/20/20 "
            "split needs at least 5 per class"
        )
    idx = np.arange(len(y))
    try:
        tr, _, va, _, te, _ = stratified_split(idx, y, seed)
    except ValueError as exc:
        reason = " ".join(str(exc).split())
        raise TaskError(f"{where}: cannot split the rows stratified ({reason})") from None
    return sequence_task(
        file.name,
        [series[i] for i in tr],
        y[tr],
        [series[i] for i in te],
        y[te],
        x_val=[series[i] for i in va],
        y_val=y[va],
        seed=seed,
        source=str(file),
        where=where,
    )


def _reason(exc: BaseException) -> str:
    """An exception's message on one short line, or its type when it has none."""
    text = " ".join(str(exc).split())
    return (text[:150] + "...") if len(text) > 150 else (text or type(exc).__name__)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


register_path_loader(".npz", load_npz)
register_path_loader(".csv", load_csv)
