"""Build a tabular benchmark: train every architecture of a small space, several seeds each.

Regenerate the shipped tables (see ``benchmarks/README.md`` for how long each took)::

    nice -n 10 python benchmarks/make_table.py search/bench/tables/digits-mlp.yaml
    nice -n 10 python benchmarks/make_table.py search/bench/tables/mackeyglass-tdnn.yaml \
        --task forecast:MackeyGlass --epochs 5 --batch-size 128 --lr 0.01
    nice -n 10 python benchmarks/make_table.py search/bench/tables/digits-cnn.yaml \
        --epochs 5 --batch-size 256 --lr 0.01
    nice -n 10 python benchmarks/make_table.py search/bench/tables/italypower-rnn.yaml \
        --task ucr:ItalyPowerDemand:pooled --epochs 4 --batch-size 256 --lr 0.01
    nice -n 10 python benchmarks/make_table.py search/bench/tables/japanesevowels-rnn.yaml \
        --task uea:JapaneseVowels:pooled --epochs 4 --batch-size 256 --lr 0.01

The table is ``<space>.csv`` next to the space file, one row per architecture: its canonical key
(`Space.key`), its decisions (``layers``, ``layers.0.width``, ...; empty where inactive), the
validation and test metric of each training seed (``val_<metric>_seed0``,
``test_<metric>_seed0``, ...), its parameter count, its mean training seconds per seed, and the
learning curves: the validation metric after every epoch of each seed
(``val_<metric>_seed0_epoch1``, ..., `search.bench.tables.epoch_column`; empty for an epoch not
finished because training diverged before), so that methods that stop training early (ASHA,
Hyperband) can be simulated on the table. The metric follows the task's kind (`METRICS`):
``accuracy`` for classification (higher is better), ``nrmse`` for forecasting (lower is better).
The recipe, with the metric's name and direction, lives in ``<space>.json`` beside it.

The script is resumable: rows are appended and flushed one architecture at a time, keys already
in the table are skipped, and a half-written last line (a crash mid-write) is dropped on restart,
so stopping it loses at most the architecture in progress. Restarting with a different recipe
than the one recorded, or on a table whose columns differ (one made before the curves), is
refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch

from search.bench.tables import epoch_column, seed_column
from spaces import Space, load_space
from spaces.families import build_model
from trainers import (
    Task,
    Trainer,
    TrainOptions,
    TrainResult,
    get_trainer,
    load_task,
    seed_everything,
)

DEFAULTS = {"task": "digits", "data_seed": 0, "seeds": 2, "epochs": 10, "batch_size": 128}
DEFAULT_LR = 3e-3


class Metric(NamedTuple):
    """The table's metric for one task kind: its name, direction and how a fit yields it."""

    name: str
    higher_is_better: bool
    description: str
    values: Callable[[TrainResult, Task], tuple[float, float | None]]
    """``values(result, task) -> (validation, test or None when the seed diverged)``."""
    epoch: Callable[[dict[str, float], Task], float]
    """``epoch(record, task)``: the validation value of one epoch, from the record the trainer
    reports after it."""


def _accuracy(result: TrainResult, task: Task) -> tuple[float, float | None]:
    # not result.reward, which may carry a tie-breaker besides the accuracy
    return (0.0 if result.diverged else result.val_accuracy), result.test_accuracy


def _epoch_accuracy(record: dict[str, float], task: Task) -> float:
    return record["val_accuracy"]


def _epoch_nrmse(record: dict[str, float], task: Task) -> float:
    return record["val_rmse"] / float(task.metadata.get("scale", 1.0))


def _nrmse(result: TrainResult, task: Task) -> tuple[float, float | None]:
    scale = float(task.metadata.get("scale", 1.0))
    val = result.metrics.get("val_rmse", math.nan) / scale  # NaN: no epoch finished
    test = None if result.diverged else result.metrics["test_rmse"] / scale
    return (val if math.isfinite(val) else math.inf), test


METRICS = {
    "classification": Metric(
        "accuracy",
        True,
        "best validation accuracy over the epochs; test accuracy of those weights",
        _accuracy,
        _epoch_accuracy,
    ),
    "forecasting": Metric(
        "nrmse",
        False,
        "RMSE divided by the training part's standard deviation (the standardised scale), "
        "lower is better: the best validation value over the epochs and the test value of "
        "those weights; a search's reward is 1 / (1 + validation nrmse)",
        _nrmse,
        _epoch_nrmse,
    ),
}
"""The metric a table records, by the task's kind."""


def enumerate_actions(space: Space) -> Iterator[list[int]]:
    """Every complete action sequence of `space`, depth first, in action order."""
    stack: list[list[int]] = [[]]
    while stack:
        prefix = stack.pop()
        if space.is_complete(prefix):
            yield prefix
            continue
        for action in reversed(space.legal_actions(prefix)):
            stack.append([*prefix, action])


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Decisions as flat columns: lists as their length plus ``name.i.key`` entries."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list):
        out = {prefix: len(value)}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{i}"))
        return out
    return {prefix: value}


def decision_columns(space: Space, archs: list[dict[str, Any]]) -> list[str]:
    """Decision column names, in the order they first appear over `archs`."""
    seen: dict[str, None] = {}
    for arch in archs:
        for name in flatten(arch, ""):
            seen.setdefault(name, None)
    return list(seen)


def done_keys(path: Path) -> set[str]:
    """Keys already in the table; drops a half-written last line left by a crash."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        path.write_bytes(data[:cut])
        print(f"dropped a half-written last line of {path}", file=sys.stderr)
    with path.open(newline="") as f:
        return {row["key"] for row in csv.DictReader(f)}


def main(argv: list[str] | None = None) -> int:
    """Train the architectures the table still lacks; 2 when the task kind has no table metric
    or the table was begun with another recipe."""
    args = _parser().parse_args(argv)
    torch.set_num_threads(1)
    space = load_space(args.space)
    out = Path(args.out) if args.out else Path(args.space).with_suffix(".csv")
    task = load_task(args.task, seed=args.data_seed)
    if task.kind not in METRICS:
        print(f"{args.task}: no table metric for {task.kind!r} tasks", file=sys.stderr)
        return 2
    metric = METRICS[task.kind]
    if not _write_recipe(out, _recipe(args, metric)):
        return 2
    archs = [space.decode(actions) for actions in enumerate_actions(space)]
    assert len(archs) == space.cardinality(), (len(archs), space.cardinality())
    done = done_keys(out)
    todo = [a for a in archs if space.key(a) not in done]
    if args.limit is not None:
        todo = todo[: args.limit]
    print(f"{out}: {len(done)} of {len(archs)} done, {len(todo)} to train", flush=True)
    header = _header(decision_columns(space, archs), metric, args.seeds, args.epochs)
    if not _same_header(out, header):
        return 2
    trainer = get_trainer(task.kind)
    _append_rows(out, header, todo, lambda a: _train_row(args, space, task, trainer, metric, a))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space", help="space YAML file; the table is written beside it")
    parser.add_argument("--out", help="table CSV (default: the space file with .csv)")
    parser.add_argument("--task", default=DEFAULTS["task"], help="task name (default digits)")
    parser.add_argument("--data-seed", type=int, default=DEFAULTS["data_seed"], help="split seed")
    parser.add_argument("--seeds", type=int, default=DEFAULTS["seeds"], help="training seeds")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam learning rate")
    parser.add_argument("--limit", type=int, help="stop after this many new architectures")
    return parser


def _recipe(args: argparse.Namespace, metric: Metric) -> dict[str, Any]:
    """How the table is made: what `load_table` and a restart read back."""
    return {
        "space": Path(args.space).name,
        "task": args.task,
        "data_seed": args.data_seed,
        "seeds": list(range(args.seeds)),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": "adam",
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "reward": metric.description,
        "curves": "validation metric after every epoch: val_<metric>_seed<k>_epoch<e>",
    }


def _write_recipe(out: Path, recipe: dict[str, Any]) -> bool:
    """Write ``<table>.json``; False (with a message) if the table was begun with another."""
    meta_path = out.with_suffix(".json")
    if meta_path.exists() and out.exists():
        old = json.loads(meta_path.read_text())
        if old != recipe:
            print(f"{out}: recorded recipe {old} differs from {recipe}; refusing", file=sys.stderr)
            return False
    meta_path.write_text(json.dumps(recipe, indent=2) + "\n")
    return True


def _header(decisions: list[str], metric: Metric, seeds: int, epochs: int) -> list[str]:
    return [
        "key",
        *decisions,
        *(seed_column("val", metric.name, s) for s in range(seeds)),
        *(seed_column("test", metric.name, s) for s in range(seeds)),
        "params",
        "train_seconds",
        *(
            epoch_column("val", metric.name, s, e)
            for s in range(seeds)
            for e in range(1, epochs + 1)
        ),
    ]


def _same_header(out: Path, header: list[str]) -> bool:
    """False (with a message) if the table exists with other columns than `header`."""
    if not out.exists() or out.stat().st_size == 0:
        return True
    with out.open(newline="") as f:
        old = next(csv.reader(f), [])
    if old != header:
        print(f"{out}: its columns {old} differ from {header}; refusing", file=sys.stderr)
        return False
    return True


def _train_row(
    args: argparse.Namespace,
    space: Space,
    task: Task,
    trainer: Trainer,
    metric: Metric,
    arch: dict[str, Any],
) -> dict[str, Any]:
    """One architecture trained once per seed: its row of the table."""
    row: dict[str, Any] = {"key": space.key(arch), **flatten(arch, "")}
    seconds = 0.0
    for s in range(args.seeds):
        seed_everything(s)  # the initial weights too, so a row never depends on order
        model = build_model(space.family, arch, task.input_shape, task.num_outputs)
        options = TrainOptions(
            epochs=args.epochs, seed=s, device="cpu", batch_size=args.batch_size, lr=args.lr
        )
        curve: dict[int, float] = {}  # epoch -> validation value; none after a divergence

        def report(record: dict[str, Any], curve: dict[int, float] = curve) -> None:
            curve[int(record["epoch"])] = metric.epoch(record, task)

        result = trainer.fit(model, task, options, report)
        val, test = metric.values(result, task)
        for e in range(1, args.epochs + 1):
            row[epoch_column("val", metric.name, s, e)] = f"{curve[e]:.6f}" if e in curve else ""
        row[seed_column("val", metric.name, s)] = f"{val:.6f}"
        row[seed_column("test", metric.name, s)] = "" if test is None else f"{test:.6f}"
        row["params"] = result.params
        seconds += result.train_seconds
    row["train_seconds"] = f"{seconds / args.seeds:.3f}"
    return row


def _append_rows(
    out: Path,
    header: list[str],
    todo: list[dict[str, Any]],
    make_row: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    """Append one row per architecture, flushed at once (a restart skips them)."""
    new_file = not out.exists() or out.stat().st_size == 0
    start = time.perf_counter()
    with out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        if new_file:
            writer.writeheader()
        for n, arch in enumerate(todo, 1):
            writer.writerow(make_row(arch))
            f.flush()
            if n % 50 == 0 or n == len(todo):
                elapsed = time.perf_counter() - start
                eta = elapsed / n * (len(todo) - n)
                print(f"{n}/{len(todo)} {elapsed:.0f}s elapsed, ~{eta:.0f}s left", flush=True)


if __name__ == "__main__":
    sys.exit(main())
