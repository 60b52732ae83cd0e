"""Leave-one-table-out: choose a controller's options on every shipped table but one and report
them on the one left out, for each table in turn, beside the strongest simple baselines.

    python benchmarks/loto.py reinforce --grid rank_samples=0,16 --grid rank_neighbours=0,2 \
        --tune-seeds 30 --seeds 100 --budget 400 --jobs 2

Each candidate setting (the product of the ``--grid`` values) runs `--tune-seeds` seeds on each
table once; for a held-out table, the setting with the lowest mean over the *other* tables of
log(median evaluations to the top 1%) is chosen (ties: the earlier setting), so no table ever
picks its own setting. The chosen setting and the baselines then run `--seeds` fresh seeds
(numbered from 1000, apart from the tuning seeds) on the held-out table. The ratio column is
the chosen setting's median over the best baseline's. `--also SPEC` reports more controllers on
the same seeds beside the baselines (e.g. the controller with ranking off).

Every (table, controller with options, seeds, budget) run is kept in ``runs/loto/`` and read
back on a rerun, so the protocol resumes after a kill and grows without repeating work.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import math
import sys
from pathlib import Path

import numpy as np

from search.bench.runs import check_spec, run_seeds, seed_pool
from search.bench.stats import ControllerSummary, summarize
from search.bench.tables import Table, load_table, shipped_tables

BASELINES = ("local", "evolution", "tpe")
REPORT_SEED_START = 1000
CACHE = Path("runs") / "loto"


def settings(controller: str, grid: list[str]) -> list[str]:
    """Controller specs (``name:key=value:...``) for the product of the grid's values."""
    axes = []
    for item in grid:
        key, _, values = item.partition("=")
        axes.append([f"{key}={v}" for v in values.split(",")])
    return [":".join([controller, *combo]) for combo in itertools.product(*axes)]


def cached_runs(table: Table, spec: str, seeds: range, budget: int, pool) -> list[np.ndarray]:
    """The rows each seed of `spec` evaluated on `table` (kept in `CACHE`); a run kept for
    the first seeds of `seeds` only is extended by the rest."""
    path = _cache_path(table, spec, seeds, budget)
    if not path.exists():
        kept = next(
            (
                stop
                for stop in range(seeds.stop - 1, seeds.start, -1)
                if _cache_path(table, spec, range(seeds.start, stop), budget).exists()
            ),
            seeds.start,
        )
        rows = []
        if kept > seeds.start:
            rows = list(np.load(_cache_path(table, spec, range(seeds.start, kept), budget)))
        more, _ = run_seeds(table, spec, range(kept, seeds.stop), budget, pool)
        rows += more
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.stack(rows))
    return list(np.load(path))


def _cache_path(table: Table, spec: str, seeds: range, budget: int) -> Path:
    tag = f"{spec}|{seeds.start}-{seeds.stop}|{budget}"
    return CACHE / table.name / (hashlib.sha1(tag.encode()).hexdigest()[:16] + ".npy")


def log_median(summary: ControllerSummary, budget: int) -> float:
    """log of the median evaluations to the top 1% (the budget doubled when not reached)."""
    median = summary.median_evals_to_top
    return math.log(median if median is not None else 2 * budget)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    candidates = settings(args.controller, args.grid)
    extra = tuple(args.also)
    for spec in (*candidates, *BASELINES, *extra):
        check_spec(spec)
    names = args.tables.split(",") if args.tables else shipped_tables()
    if len(names) < 2:
        print("leave-one-table-out needs at least two tables", file=sys.stderr)
        return 2
    if args.jobs <= 1:
        import torch

        torch.set_num_threads(1)  # one process, one core: the networks are tiny
    tables = {name: load_table(name) for name in names}
    tuning = range(args.tune_seeds)
    report = range(REPORT_SEED_START, REPORT_SEED_START + args.seeds)
    score, tuned, reports = {}, {}, {}
    for name, table in tables.items():  # one pool of workers per table and pass
        with seed_pool(table, args.jobs) as pool:
            for spec in candidates:
                rows = cached_runs(table, spec, tuning, args.budget, pool)
                tuned[(name, spec)] = summarize(table, spec, rows)
                score[(name, spec)] = log_median(tuned[(name, spec)], args.budget)
    _print_tuning(candidates, list(tables), tuned, score, args)
    if args.tune_only:
        return 0
    chosen = {
        name: min(candidates, key=lambda s: np.mean([score[(o, s)] for o in tables if o != name]))
        for name in tables
    }
    for name, table in tables.items():
        with seed_pool(table, args.jobs) as pool:
            for spec in dict.fromkeys((chosen[name], *BASELINES, *extra)):
                rows = cached_runs(table, spec, report, args.budget, pool)
                reports[(name, spec)] = summarize(table, spec, rows)
    print(
        f"{args.controller}: {len(candidates)} settings x {len(tables)} tables, tuned on "
        f"{args.tune_seeds} seeds, reported on {args.seeds} others (budget {args.budget})\n"
    )
    shown = ("chosen", *BASELINES, *extra)
    columns = [f"{c}: median [95%] (regret@100, @200)" for c in shown]
    print("| held out | chosen setting | " + " | ".join(columns) + " | ratio |")
    print("|" + " --- |" * (3 + len(columns)))
    for name in tables:
        summaries = [reports[(name, spec)] for spec in (chosen[name], *BASELINES, *extra)]
        baselines = summaries[1 : 1 + len(BASELINES)]
        best_baseline = min((s.median_evals_to_top or math.inf) for s in baselines)
        ratio = (summaries[0].median_evals_to_top or math.inf) / best_baseline
        cells = " | ".join(_cell(s, args.budget) for s in summaries)
        setting = chosen[name].partition(":")[2] or "defaults"
        print(f"| {name} | {setting} | {cells} | {ratio:.2f} |", flush=True)
    return 0


def _print_tuning(candidates, names, tuned, score, args) -> None:
    """The tuning seeds' median evaluations to the top 1% (regret@100, @200) per setting."""
    print(f"tuning: seeds 0-{args.tune_seeds - 1}, budget {args.budget}\n")
    print("| setting | " + " | ".join(names) + " | mean log median |")
    print("|" + " --- |" * (2 + len(names)))
    for spec in candidates:
        cells = []
        for name in names:
            summary = tuned[(name, spec)]
            median = summary.median_evals_to_top
            at = [summary.regret_at(n)[0] for n in (100, 200) if n <= args.budget]
            regrets = ", ".join(f"{m:.4f}" for m in at)
            cells.append(f"{median if median is not None else 'never'} ({regrets})")
        mean = np.mean([score[(name, spec)] for name in names])
        print(f"| {spec.partition(':')[2] or 'defaults'} | {' | '.join(cells)} | {mean:.2f} |")
    print(flush=True)


def _cell(summary: ControllerSummary, budget: int) -> str:
    low, high = summary.evals_to_top_interval
    median = summary.median_evals_to_top
    at = [summary.regret_at(n) for n in (100, 200) if n <= budget]
    regrets = ", ".join(f"{m:.4f}±{se:.4f}" for m, se in at)
    return f"{median if median is not None else '>' + str(budget)} [{low:g}, {high:g}] ({regrets})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("controller", help="the controller whose options are chosen")
    parser.add_argument(
        "--grid", action="append", default=[], help="option=value,value,... (repeatable)"
    )
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        help="another controller spec reported beside the baselines (repeatable)",
    )
    parser.add_argument("--tables", help="comma-separated tables (default: every shipped one)")
    parser.add_argument("--tune-seeds", type=int, default=30, help="seeds per setting and table")
    parser.add_argument("--seeds", type=int, default=100, help="report seeds per held-out table")
    parser.add_argument("--budget", type=int, default=400, help="evaluations per seed")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the seeds")
    parser.add_argument("--tune-only", action="store_true", help="print the tuning table and stop")
    return parser


if __name__ == "__main__":
    sys.exit(main())
