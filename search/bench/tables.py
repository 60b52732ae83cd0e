"""Tabular benchmarks: every architecture of a small space with its metric per training seed.

A table (``<name>.csv``, made by ``benchmarks/make_table.py``) has a ``key`` column
(`Space.key`) and ``val_<metric>_seed<k>`` / ``test_<metric>_seed<k>`` columns; its space is the
``.yaml`` beside it, and its recipe (``.json``) may say the metric's direction. It may also hold
the learning curves: ``val_<metric>_seed<k>_epoch<e>`` columns, the validation metric after every
epoch (`epoch_column`), so that methods that stop training early can be simulated on it.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LOWER_IS_BETTER",
    "TABLES_DIR",
    "TOP_FRACTION",
    "BenchError",
    "Table",
    "check_table",
    "epoch_column",
    "load_table",
    "shipped_tables",
    "seed_column",
]

TABLES_DIR = Path(__file__).resolve().parent / "tables"
"""The tables shipped with rlnas (package data): ``<name>.csv``, ``.yaml`` and ``.json``."""
TOP_FRACTION = 0.01
"""The top of a table that "evaluations to the top" counts (1%)."""
_SEED_COLUMN = re.compile(r"^(val|test)_(.+)_seed(\d+)$")
"""`seed_column`'s names, parsed."""
_EPOCH_COLUMN = re.compile(r"^val_(.+)_seed(\d+)_epoch(\d+)$")
"""`epoch_column`'s names, parsed."""
LOWER_IS_BETTER = frozenset({"error", "loss", "mae", "mse", "nrmse", "rmse"})
"""Metric names minimised when the table's recipe does not say."""


def seed_column(split: str, metric: str, seed: int) -> str:
    """The column of `metric` on `split` (``val`` or ``test``) for a training seed."""
    return f"{split}_{metric}_seed{seed}"


def epoch_column(split: str, metric: str, seed: int, epoch: int) -> str:
    """The column of `metric` on `split` for a training seed after `epoch` (1-based) epochs."""
    return f"{seed_column(split, metric, seed)}_epoch{epoch}"


class BenchError(ValueError):
    """A missing or malformed table, or a proposal the table does not hold."""


@dataclass
class Table:
    """A tabular benchmark: one row per architecture of `space`.

    Attributes:
        name: The table's name (its file stem), e.g. ``digits-mlp``.
        path: The CSV file.
        space: The `spaces.Space` the table covers (from the space file beside it).
        metric: The metric's name (``accuracy``, ``nrmse``).
        keys: Canonical keys (`Space.key`), one per row.
        val: Validation metric per row and training seed, shape (rows, seeds).
        test: Test metric per row and training seed (NaN where training diverged).
        higher_is_better: The metric's direction (accuracy: True; an error: False).
        curves: Validation metric per row, training seed and epoch, shape (rows, seeds,
            epochs), ``curves[:, :, e - 1]`` after epoch ``e``; NaN for an epoch that training
            did not finish (it diverged before). None when the table holds no curves.
    """

    name: str
    path: Path
    space: Any
    metric: str
    keys: list[str]
    val: np.ndarray
    test: np.ndarray
    higher_is_better: bool = True
    curves: np.ndarray | None = None
    _index: dict[tuple[int, ...], int] = field(default_factory=dict, repr=False)

    @property
    def val_mean(self) -> np.ndarray:
        """Mean validation metric over the training seeds, per row (the objective)."""
        return self.val.mean(axis=1)

    @property
    def test_mean(self) -> np.ndarray:
        """Mean test metric over the training seeds that finished, per row."""
        with np.errstate(all="ignore"):
            return np.nanmean(self.test, axis=1)

    @property
    def score(self) -> np.ndarray:
        """The mean validation metric signed so that larger is better, per row (for ranking)."""
        return self.val_mean if self.higher_is_better else -self.val_mean

    @property
    def reward(self) -> np.ndarray:
        """What a controller is told per row: the mean validation metric, or ``1 / (1 + mean)``
        of an error metric (in (0, 1], larger is better)."""
        return self.val_mean if self.higher_is_better else 1.0 / (1.0 + self.val_mean)

    @property
    def optimum(self) -> float:
        """The best mean validation metric of the table (the largest, or smallest error)."""
        return float(self.val_mean[np.argmax(self.score)])

    def top_threshold(self, fraction: float = TOP_FRACTION) -> float:
        """Mean validation metric of the ceil(fraction * rows)-th best row: the top's cut-off."""
        k = max(1, math.ceil(fraction * len(self.keys)))
        return float(self.val_mean[np.argsort(-self.score, kind="stable")[k - 1]])

    def in_top(self, values: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
        """Whether each mean validation value is in the top `fraction` (cut-off included)."""
        threshold = self.top_threshold(fraction)
        return values >= threshold if self.higher_is_better else values <= threshold

    def index(self, candidate: Any) -> int:
        """The row of a proposed candidate (or architecture mapping).

        Raises:
            BenchError: The table has no row for it.
        """
        actions = getattr(candidate, "actions", None)
        if actions is not None:
            row = self._index.get(tuple(actions))
            if row is not None:
                return row
        arch = getattr(candidate, "architecture", candidate)
        try:
            row = self._index.get(tuple(self.space.encode(arch)))
        except ValueError as exc:
            raise BenchError(f"{self.path}: proposal {arch!r} is not in the space: {exc}") from None
        if row is None:
            raise BenchError(f"{self.path}: no row for {self.space.key(arch)}; is the table done?")
        return row


def shipped_tables() -> list[str]:
    """Names of the tables shipped in `TABLES_DIR`, sorted."""
    return sorted(p.stem for p in TABLES_DIR.glob("*.csv"))


def _resolve_table(table: str | Path) -> Path:
    path = Path(table)
    if path.suffix == ".csv" or path.exists():
        return path
    return TABLES_DIR / f"{table}.csv"


def load_table(
    table: str | Path, space: str | Path | None = None, higher_is_better: bool | None = None
) -> Table:
    """Read a benchmark table and its space.

    Args:
        table: A CSV path, or the name of a table shipped in `TABLES_DIR` (``digits-mlp``).
        space: The space file; default: the CSV's path with ``.yaml``.
        higher_is_better: The metric's direction; default: the recipe's ``higher_is_better``
            (the CSV's path with ``.json``), else False for the names in `LOWER_IS_BETTER`.

    Raises:
        BenchError: The file is missing or malformed, a key is not a canonical key of the
            space, a key appears twice, a validation value is missing, the recipe names
            another metric, or an error metric is negative.
    """
    path = _resolve_table(table)
    if not path.exists():
        raise BenchError(
            f"no table {str(table)!r} (no file {path}; shipped tables: {shipped_tables()})"
        )
    space_obj = _load_space(path, space)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    metric, seeds, val_columns, test_columns = _seed_columns(path, columns)
    curve_columns = _epoch_columns(path, columns, metric, seeds)
    keys: list[str] = []
    index: dict[tuple[int, ...], int] = {}
    val = np.empty((len(rows), len(val_columns)))
    test = np.full((len(rows), len(val_columns)), np.nan)
    curves = np.full((len(rows), *curve_columns.shape), np.nan) if curve_columns.size else None
    for i, row in enumerate(rows):
        where = f"{path}: row {i + 2}"
        actions = _row_actions(space_obj, row["key"], where, index)
        index[actions] = i
        keys.append(row["key"])
        for j, (vc, tc) in enumerate(zip(val_columns, test_columns, strict=True)):
            val[i, j] = _number(row.get(vc), f"{where}, {vc}", required=True)
            if tc is not None:
                test[i, j] = _number(row.get(tc), f"{where}, {tc}", required=False)
        if curves is not None:
            for (j, e), column in np.ndenumerate(curve_columns):
                curves[i, j, e] = _number(row.get(column), f"{where}, {column}", required=False)
    if not keys:
        raise BenchError(f"{path}: the table has no rows")
    if higher_is_better is None:
        higher_is_better = _recipe_direction(path, metric)
    if not higher_is_better and (val < 0).any():
        raise BenchError(f"{path}: {metric} is minimised, so it must not be negative")
    return Table(
        path.stem, path, space_obj, metric, keys, val, test, higher_is_better, curves, index
    )


def _load_space(path: Path, space: str | Path | None) -> Any:
    from spaces import SpaceError, load_space

    space_path = Path(space) if space is not None else path.with_suffix(".yaml")
    try:
        return load_space(space_path)
    except SpaceError as exc:
        raise BenchError(f"{path}: cannot load its space: {exc}") from None


def _seed_columns(
    path: Path, columns: Sequence[str]
) -> tuple[str, list[int], list[str], list[str | None]]:
    """The metric, the training seeds, their validation columns and the matching test
    columns."""
    seeds: dict[str, dict[int, str]] = {"val": {}, "test": {}}
    metrics = set()
    for column in columns:
        if match := _SEED_COLUMN.match(column):
            seeds[match[1]][int(match[3])] = column
            metrics.add(match[2])
    if "key" not in columns or not seeds["val"] or len(metrics) != 1:
        raise BenchError(
            f"{path}: expected columns 'key', 'val_<metric>_seed<k>' and "
            f"'test_<metric>_seed<k>' of one metric, got {columns}"
        )
    numbers = sorted(seeds["val"])
    val_columns = [seeds["val"][s] for s in numbers]
    test_columns = [seeds["test"].get(s) for s in numbers]
    return metrics.pop(), numbers, val_columns, test_columns


def _epoch_columns(path: Path, columns: Sequence[str], metric: str, seeds: list[int]) -> np.ndarray:
    """The curve columns of the training `seeds` (those of the validation columns), shape
    (seeds, epochs) of names; (0, 0) when the table has none.

    Raises:
        BenchError: They name another metric, or do not cover every seed and epoch 1..E.
    """
    found: dict[tuple[int, int], str] = {}
    for column in columns:
        if match := _EPOCH_COLUMN.match(column):
            if match[1] != metric:
                raise BenchError(f"{path}: curve column {column!r} is not of the metric {metric!r}")
            found[int(match[2]), int(match[3])] = column
    if not found:
        return np.empty((0, 0), dtype=object)
    epochs = max(e for _, e in found)
    names = np.empty((len(seeds), epochs), dtype=object)
    for j, s in enumerate(seeds):
        for e in range(1, epochs + 1):
            if (s, e) not in found:
                raise BenchError(
                    f"{path}: curve columns of seeds {seeds} and epochs 1..{epochs} "
                    f"expected; no {epoch_column('val', metric, s, e)!r}"
                )
            names[j, e - 1] = found.pop((s, e))
    if found:
        raise BenchError(
            f"{path}: curve columns of unknown seeds or epochs: {sorted(found.values())}"
        )
    return names


def _row_actions(
    space: Any, key: str, where: str, index: dict[tuple[int, ...], int]
) -> tuple[int, ...]:
    """The actions of a row's key: an architecture of the space, canonical, not yet seen."""
    try:
        actions = tuple(space.encode(json.loads(key)))
    except (ValueError, TypeError) as exc:
        raise BenchError(
            f"{where}: key {key!r} is not an architecture of the space: {exc}"
        ) from None
    if space.key(space.decode(actions)) != key:
        raise BenchError(f"{where}: key {key!r} is not canonical (see Space.key)")
    if actions in index:
        raise BenchError(f"{where}: key {key!r} appears twice (first at row {index[actions]})")
    return actions


def _recipe_direction(path: Path, metric: str) -> bool:
    recipe_path = path.with_suffix(".json")
    recipe: dict[str, Any] = {}
    if recipe_path.exists():
        try:
            recipe = json.loads(recipe_path.read_text())
        except (OSError, ValueError) as exc:
            raise BenchError(f"{recipe_path}: cannot read the recipe: {exc}") from None
    if recipe.get("metric", metric) != metric:
        raise BenchError(f"{recipe_path}: recipe metric {recipe['metric']!r}, table {metric!r}")
    direction = recipe.get("higher_is_better", metric not in LOWER_IS_BETTER)
    if not isinstance(direction, bool):
        raise BenchError(f"{recipe_path}: higher_is_better must be true or false")
    return direction


def _number(text: str | None, where: str, required: bool) -> float:
    if text is None or text.strip() == "":
        if required:
            raise BenchError(f"{where}: missing value")
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise BenchError(f"{where}: {text!r} is not a number") from None
    if required and not math.isfinite(value):
        raise BenchError(f"{where}: {text!r} is not a finite number")
    return value


def check_table(table: Table) -> list[str]:
    """Problems with a table's coverage: empty when it holds every architecture of its space.

    (Duplicate and non-canonical keys are already refused by `load_table`.)
    """
    expected = table.space.cardinality()
    problems = []
    if len(table.keys) != expected:
        problems.append(f"{len(table.keys)} rows for {expected} architectures of the space")
    if table.val.shape[1] < 2:
        problems.append(f"{table.val.shape[1]} training seed(s), expected at least 2")
    return problems
