"""`rlnas bench`: controllers against a tabular benchmark, in-process, thousands of evaluations/s.

A table (``benchmarks/<name>.csv``, made by ``benchmarks/make_table.py``) holds every
architecture of a small space with the validation and test metric of several training seeds.
The objective looks a proposal up in the table and returns its mean-over-seeds validation
metric, so a controller is scored without training anything and without Ray::

    rlnas bench digits-mlp                           # every registered controller, 30 seeds
    rlnas bench digits-mlp --controllers random,reinforce --seeds 10 --budget 200

Per controller it reports, over the controller seeds 0..S-1:

- **regret** after 25/50/100/200/400 evaluations: how far the best mean validation metric found
  so far is from the table's best (mean +- standard error over seeds; never negative);
- **evaluations to the top 1%**: the first evaluation whose architecture is in the top 1% of the
  table by validation metric (ties with the cut-off included); the median is over all seeds with
  "not reached within the budget" counted as infinitely late, and the not-reached count is given
  beside it (a median of "-" means more than half of the seeds never got there);
- **test metric of the selected architecture**: the architecture with the best validation metric
  among those evaluated (the first one on ties), scored by its mean test metric.

The budget counts asks: a controller that proposes an architecture it has already seen pays
for it again, as it would in a real search without a cache. Every reward is told right after its
ask (one child at a time).

The metric's direction comes from the recipe beside the table (``<name>.json``, key
``higher_is_better``; without it, error-like names such as ``rmse`` or ``nrmse`` are minimised
and anything else maximised). "Best" and "top" follow it. A controller maximises its reward, so
it is told the mean validation metric when higher is better, and ``1 / (1 + mean)`` of a
non-negative error metric otherwise: for ``nrmse`` that is exactly the forecasting trainer's
reward.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BENCHMARKS_DIR",
    "CHECKPOINTS",
    "BenchError",
    "BenchResult",
    "ControllerSummary",
    "Table",
    "add_bench_arguments",
    "check_table",
    "load_table",
    "run_bench",
    "run_bench_command",
    "run_controller",
    "summarize",
]

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
CHECKPOINTS = (25, 50, 100, 200, 400)
TOP_FRACTION = 0.01
_SEED_COLUMN = re.compile(r"^(val|test)_(.+)_seed(\d+)$")
LOWER_IS_BETTER = frozenset({"error", "loss", "mae", "mse", "nrmse", "rmse"})
"""Metric names minimised when the table's recipe does not say."""

ControllerFactory = Callable[[Any, int], Any]
"""`factory(space, seed) -> Controller`; a name of a registered controller stands for one."""


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
    """

    name: str
    path: Path
    space: Any
    metric: str
    keys: list[str]
    val: np.ndarray
    test: np.ndarray
    higher_is_better: bool = True
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


def _resolve_table(table: str | Path) -> Path:
    path = Path(table)
    if path.suffix == ".csv" or path.exists():
        return path
    return BENCHMARKS_DIR / f"{table}.csv"


def load_table(
    table: str | Path, space: str | Path | None = None, higher_is_better: bool | None = None
) -> Table:
    """Read a benchmark table and its space.

    Args:
        table: A CSV path, or the name of a table shipped in `benchmarks/` (``digits-mlp``).
        space: The space file; default: the CSV's path with ``.yaml``.
        higher_is_better: The metric's direction; default: the recipe's ``higher_is_better``
            (the CSV's path with ``.json``), else False for the names in `LOWER_IS_BETTER`.

    Raises:
        BenchError: The file is missing or malformed, a key is not a canonical key of the
            space, a key appears twice, a validation value is missing, the recipe names
            another metric, or an error metric is negative.
    """
    from spaces import SpaceError, load_space

    path = _resolve_table(table)
    if not path.exists():
        shipped = sorted(p.stem for p in BENCHMARKS_DIR.glob("*.csv"))
        raise BenchError(f"no table {str(table)!r} (no file {path}; shipped tables: {shipped})")
    space_path = Path(space) if space is not None else path.with_suffix(".yaml")
    try:
        space_obj = load_space(space_path)
    except SpaceError as exc:
        raise BenchError(f"{path}: cannot load its space: {exc}") from None
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
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
    val_columns = [seeds["val"][s] for s in sorted(seeds["val"])]
    test_columns = [seeds["test"].get(s) for s in sorted(seeds["val"])]
    keys: list[str] = []
    index: dict[tuple[int, ...], int] = {}
    val = np.empty((len(rows), len(val_columns)))
    test = np.full((len(rows), len(val_columns)), np.nan)
    for i, row in enumerate(rows):
        where = f"{path}: row {i + 2}"
        key = row["key"]
        try:
            actions = tuple(space_obj.encode(json.loads(key)))
        except (ValueError, TypeError) as exc:
            raise BenchError(
                f"{where}: key {key!r} is not an architecture of the space: {exc}"
            ) from None
        if space_obj.key(space_obj.decode(actions)) != key:
            raise BenchError(f"{where}: key {key!r} is not canonical (see Space.key)")
        if actions in index:
            raise BenchError(f"{where}: key {key!r} appears twice (first at row {index[actions]})")
        index[actions] = i
        keys.append(key)
        for j, (vc, tc) in enumerate(zip(val_columns, test_columns, strict=True)):
            val[i, j] = _number(row.get(vc), f"{where}, {vc}", required=True)
            if tc is not None:
                test[i, j] = _number(row.get(tc), f"{where}, {tc}", required=False)
    if not keys:
        raise BenchError(f"{path}: the table has no rows")
    metric = metrics.pop()
    if higher_is_better is None:
        higher_is_better = _recipe_direction(path, metric)
    if not higher_is_better and (val < 0).any():
        raise BenchError(f"{path}: {metric} is minimised, so it must not be negative")
    return Table(
        path.stem, path, space_obj, metric, keys, val, test, higher_is_better, _index=index
    )


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


def run_controller(
    table: Table, controller: str | ControllerFactory, seed: int, budget: int
) -> np.ndarray:
    """Run one controller seed for `budget` asks; the table rows it evaluated, in ask order."""
    c = _factory(controller)(table.space, seed)
    reward = table.reward
    rows = np.empty(budget, dtype=np.int64)
    for n in range(budget):
        candidate = c.ask()
        row = table.index(candidate)
        rows[n] = row
        c.tell(candidate, float(reward[row]))
    return rows


def _factory(controller: str | ControllerFactory) -> ControllerFactory:
    if not isinstance(controller, str):
        return controller
    from controller import make_controller

    return lambda space, seed: make_controller(controller, space, seed=seed)


@dataclass
class ControllerSummary:
    """One controller's numbers over its seeds (see the module docstring for definitions).

    Attributes:
        name: The controller.
        regret: Regret after every evaluation, shape (seeds, budget).
        evals_to_top: First evaluation (1-based) reaching the top 1% per seed; None if never.
        selected_val: Mean validation metric of the selected architecture, per seed.
        selected_test: Mean test metric of the selected architecture, per seed.
        seconds: Wall-clock seconds of all its seeds.
    """

    name: str
    regret: np.ndarray
    evals_to_top: list[int | None]
    selected_val: np.ndarray
    selected_test: np.ndarray
    seconds: float = 0.0

    def regret_at(self, n: int) -> tuple[float, float]:
        """Mean and standard error over seeds of the regret after `n` evaluations."""
        values = self.regret[:, n - 1]
        return float(values.mean()), _stderr(values)

    @property
    def not_reached(self) -> int:
        """Seeds that never reached the top 1% within the budget."""
        return sum(e is None for e in self.evals_to_top)

    @property
    def median_evals_to_top(self) -> float | None:
        """Median evaluations to the top 1%, not-reached counted as infinite; None when the
        median itself is not reached."""
        values = np.array([math.inf if e is None else e for e in self.evals_to_top], float)
        median = float(np.median(values))
        return median if math.isfinite(median) else None


def _stderr(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return 0.0
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def summarize(table: Table, name: str, runs: Sequence[np.ndarray], seconds: float = 0.0):
    """A `ControllerSummary` from the rows each seed evaluated (`run_controller`'s output)."""
    val_mean, test_mean, score = table.val_mean, table.test_mean, table.score
    best_score = float(score.max())
    regret, evals, sel_val, sel_test = [], [], [], []
    for rows in runs:
        values = score[rows]  # (budget,), larger is better
        regret.append(best_score - np.maximum.accumulate(values))
        hits = np.flatnonzero(table.in_top(val_mean[rows]))
        evals.append(int(hits[0]) + 1 if len(hits) else None)
        best = rows[int(np.argmax(values))]  # argmax: the first of ties
        sel_val.append(val_mean[best])
        sel_test.append(test_mean[best])
    return ControllerSummary(
        name, np.array(regret), evals, np.array(sel_val), np.array(sel_test), seconds
    )


@dataclass
class BenchResult:
    """What `run_bench` produced."""

    table: Table
    seeds: int
    budget: int
    summaries: list[ControllerSummary]
    csv_path: Path | None = None
    png_path: Path | None = None
    run_id: str | None = None

    @property
    def checkpoints(self) -> list[int]:
        """The regret checkpoints within the budget (the budget itself when none is)."""
        points = [n for n in CHECKPOINTS if n <= self.budget]
        return points or [self.budget]

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per controller (what the CSV holds)."""
        out = []
        for s in self.summaries:
            row: dict[str, Any] = {
                "controller": s.name,
                "seeds": self.seeds,
                "budget": self.budget,
            }
            for n in self.checkpoints:
                row[f"regret_{n}_mean"], row[f"regret_{n}_se"] = s.regret_at(n)
            median = s.median_evals_to_top
            row["evals_to_top1pct_median"] = "" if median is None else median
            row["top1pct_not_reached"] = s.not_reached
            row["selected_val_mean"] = float(s.selected_val.mean())
            row["selected_test_mean"] = float(np.nanmean(s.selected_test))
            row["selected_test_se"] = _stderr(s.selected_test)
            row["seconds"] = s.seconds
            out.append(row)
        return out

    def format(self) -> str:
        """A readable table of the summary."""
        t = self.table
        points = self.checkpoints
        head = ["controller", *(f"regret@{n}" for n in points), "evals to top 1%"]
        head += [f"test {t.metric} of selected", "seconds"]
        lines = []
        for s in self.summaries:
            median = s.median_evals_to_top
            reach = "-" if median is None else f"{median:g}"
            reach += f" ({s.not_reached}/{self.seeds} not reached)" if s.not_reached else ""
            lines.append(
                [
                    s.name,
                    *(_pm(*s.regret_at(n)) for n in points),
                    reach,
                    _pm(float(np.nanmean(s.selected_test)), _stderr(s.selected_test)),
                    f"{s.seconds:.1f}",
                ]
            )
        widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        if t.higher_is_better:
            top, gap = "from", "optimum minus best found"
        else:
            top, gap = "up to", "best found minus optimum"
        text = [
            f"table {t.name}: {len(t.keys)} architectures x {t.val.shape[1]} training seeds; "
            f"best mean validation {t.metric} {t.optimum:.4f}, top 1% {top} "
            f"{t.top_threshold():.4f}",
            f"{self.seeds} controller seeds, budget {self.budget} asks; regret = {gap} "
            "(mean +- standard error)",
            "",
            fmt.format(*head).rstrip(),
            *(fmt.format(*r).rstrip() for r in lines),
        ]
        return "\n".join(text)


def _pm(mean: float, se: float) -> str:
    return f"{mean:.4f} +- {se:.4f}"


def run_bench(
    table: str | Path | Table,
    controllers: Sequence[str] | Mapping[str, ControllerFactory] | None = None,
    seeds: int = 30,
    budget: int = 400,
    *,
    space: str | Path | None = None,
    out_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    track: bool = True,
    command: str | None = None,
) -> BenchResult:
    """Run controllers against a table and write the summary CSV, the regret plot and MLflow.

    Args:
        table: A `Table`, a CSV path or a shipped table's name.
        controllers: Registered controller names, or a mapping name -> ``factory(space, seed)``;
            default: every registered controller.
        seeds: Controller seeds 0..seeds-1 per controller.
        budget: Evaluations (asks) per seed.
        space: The table's space file, when it is not the CSV's path with ``.yaml``.
        out_dir: Where the CSV and PNG go; default ``runs/bench/<table name>``.
        tracking_uri: MLflow tracking URI; default `search.config.default_tracking_uri()`.
        track: Log params, metrics, the CSV and the PNG to MLflow experiment
            ``bench-<table name>`` (one run).
        command: The command that reproduces this bench, logged and written with the results.

    Raises:
        BenchError: A bad table, an unknown controller, or seeds/budget below 1.
    """
    if seeds < 1 or budget < 1:
        raise BenchError(f"seeds and budget must be >= 1, got {seeds} and {budget}")
    if not isinstance(table, Table):
        table = load_table(table, space)
    if controllers is None:
        from controller import list_controllers

        controllers = list_controllers()
    if isinstance(controllers, Mapping):
        factories = dict(controllers)
    else:
        from controller import get_controller

        factories = {}
        for name in controllers:
            try:
                get_controller(name)
            except ValueError as exc:
                raise BenchError(str(exc)) from None
            factories[name] = name
    if not factories:
        raise BenchError("no controllers to bench")

    summaries = []
    for name, factory in factories.items():
        start = time.perf_counter()
        runs = [run_controller(table, factory, s, budget) for s in range(seeds)]
        summaries.append(summarize(table, name, runs, time.perf_counter() - start))
    result = BenchResult(table, seeds, budget, summaries)

    if out_dir is None:
        from search.config import RUNS_DIR

        out_dir = RUNS_DIR / "bench" / table.name
    _write_outputs(result, Path(out_dir))
    if track:
        result.run_id = _log_mlflow(result, tracking_uri, command)
    return result


def _write_outputs(result: BenchResult, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    result.csv_path = out_dir / f"bench-{result.table.name}.csv"
    rows = result.rows()
    with result.csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    result.png_path = out_dir / f"bench-{result.table.name}.png"
    _plot(result, result.png_path)


def _plot(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = np.arange(1, result.budget + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in result.summaries:
        mean = s.regret.mean(axis=0)
        se = (
            s.regret.std(axis=0, ddof=1) / math.sqrt(len(s.regret))
            if len(s.regret) > 1
            else np.zeros_like(mean)
        )
        (line,) = ax.plot(evals, mean, label=s.name, drawstyle="steps-post")
        ax.fill_between(evals, mean - se, mean + se, color=line.get_color(), alpha=0.2, step="post")
    t = result.table
    ax.set_xscale("log")
    ax.set_xlabel("evaluations (asks)")
    gap = "optimum minus best found" if t.higher_is_better else "best found minus optimum"
    ax.set_ylabel(f"regret (validation {t.metric}: {gap})")
    ax.set_title(f"{t.name}: {len(t.keys)} architectures, {result.seeds} seeds (mean +- s.e.)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _log_mlflow(result: BenchResult, tracking_uri: str | None, command: str | None) -> str:
    from urllib.parse import urlparse

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from search.config import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    experiment_name = f"bench-{result.table.name}"
    artifact_location = None
    if urlparse(uri).scheme == "sqlite":
        db = Path(uri[len("sqlite:///") :])
        db.parent.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment_name)
        artifact_location = (db.parent / "artifacts" / safe).resolve().as_uri()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        experiment_id = client.create_experiment(
            experiment_name, artifact_location=artifact_location
        )
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
    run = client.create_run(experiment_id, tags={"rlnas.role": "bench"})
    run_id = run.info.run_id
    params = {
        "table": str(result.table.path),
        "controllers": ",".join(s.name for s in result.summaries),
        "seeds": result.seeds,
        "budget": result.budget,
        "architectures": len(result.table.keys),
        "metric": result.table.metric,
        "higher_is_better": result.table.higher_is_better,
        "training_seeds": result.table.val.shape[1],
    }
    if command:
        params["command"] = command
    now = int(time.time() * 1000)
    metrics = []
    for row in result.rows():
        for key, value in row.items():
            if key in ("controller", "seeds", "budget") or value == "":
                continue
            if math.isfinite(float(value)):
                metrics.append(Metric(f"{row['controller']}.{key}", float(value), now, 0))
    client.log_batch(
        run_id,
        params=[Param(k, str(v)[:6000]) for k, v in params.items()],
        metrics=metrics,
    )
    client.log_artifact(run_id, str(result.csv_path))
    client.log_artifact(run_id, str(result.png_path))
    client.log_text(run_id, result.format() + "\n", "summary.txt")
    client.set_terminated(run_id)
    return run_id


# ------------------------------------------------------------------------------- command line


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `rlnas bench`'s arguments to `parser` (the subcommand's parser)."""
    parser.add_argument(
        "table",
        nargs="?",
        default="digits-mlp",
        help="a table CSV, or the name of one in benchmarks/ (default digits-mlp)",
    )
    parser.add_argument(
        "--controllers",
        help="comma-separated controller names (default: every registered controller)",
    )
    parser.add_argument("--seeds", type=int, default=30, help="controller seeds (default 30)")
    parser.add_argument(
        "--budget", type=int, default=400, help="evaluations (asks) per seed (default 400)"
    )
    parser.add_argument("--space", help="the table's space file (default: the CSV with .yaml)")
    parser.add_argument("--out", help="folder for the CSV and PNG (default runs/bench/<table>)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///runs/...)")
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def run_bench_command(args: argparse.Namespace) -> int:
    """Run `rlnas bench` from parsed arguments; prints the results. Returns the exit status
    (2 with a one-line message on bad input)."""
    import logging

    import torch

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    torch.set_num_threads(1)  # the controllers' networks are tiny; threads only cost here
    controllers = None
    if args.controllers:
        controllers = [c.strip() for c in args.controllers.split(",") if c.strip()]
    names = controllers
    if names is None:
        from controller import list_controllers

        names = list_controllers()
    command = ["rlnas", "bench", str(args.table), "--controllers", ",".join(names)]
    command += ["--seeds", str(args.seeds), "--budget", str(args.budget)]
    if args.space:
        command += ["--space", str(args.space)]
    reproduce = shlex.join(command)
    try:
        result = run_bench(
            args.table,
            controllers,
            args.seeds,
            args.budget,
            space=args.space,
            out_dir=args.out,
            tracking_uri=args.tracking_uri,
            track=not args.no_tracking,
            command=reproduce,
        )
    except BenchError as exc:
        print(f"rlnas bench: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(result.format())
    print()
    print(f"results:   {result.csv_path}")
    print(f"plot:      {result.png_path}")
    if result.run_id is not None:
        print(f"tracking:  experiment 'bench-{result.table.name}', run {result.run_id}")
    print(f"reproduce: {reproduce}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m search.bench ...``: the same as `rlnas bench` until the CLI wires it."""
    parser = argparse.ArgumentParser(prog="rlnas bench", description=__doc__.splitlines()[0])
    add_bench_arguments(parser)
    return run_bench_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
