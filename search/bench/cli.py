"""`rlnas bench`'s arguments and command."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from search.bench.runs import check_spec, run_bench
from search.bench.tables import BenchError, shipped_tables
from search.config import CONTROLLERS

__all__ = ["add_bench_arguments", "main", "run_bench_command"]


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `rlnas bench`'s arguments to `parser` (the subcommand's parser)."""
    parser.add_argument(
        "table",
        nargs="?",
        help="a table CSV, or the name of one shipped with rlnas (shipped: "
        f"{', '.join(shipped_tables())}; default digits-mlp)",
    )
    parser.add_argument(
        "--all", action="store_true", help="every table shipped with rlnas, one after another"
    )
    parser.add_argument(
        "--controllers",
        help="comma-separated controller names, each with options if wanted "
        f"(reinforce:lr=0.01:batch=2; built-in: {', '.join(CONTROLLERS)}; default: every "
        "registered controller)",
    )
    parser.add_argument("--seeds", type=int, default=30, help="controller seeds (default 30)")
    parser.add_argument(
        "--budget", type=int, default=400, help="evaluations (asks) per seed (default 400)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes the seeds are spread over; results do not depend on it (default 1)",
    )
    parser.add_argument("--space", help="the table's space file (default: the CSV with .yaml)")
    parser.add_argument("--out", help="folder for the CSV and PNG (default runs/bench/<table>)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///runs/...)")
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    parser.add_argument(
        "--warm-start-from",
        metavar="TABLE",
        help="also run each controller warm-started: each seed first searches this table (a "
        "related one: the same decisions on another task), then starts on TABLE from that "
        "final state; evaluations to the top 1%% cold and warm side by side",
    )
    parser.add_argument(
        "--scheduler",
        help="simulate early stopping on the table's learning curves instead: comma-separated "
        "schedulers (fifo, asha, hyperband), each controller under each, compared by regret "
        "against epochs spent (the epochs of --budget children trained in full)",
    )
    parser.add_argument(
        "--grace-epochs", type=int, default=2, help="with --scheduler: as in rlnas search"
    )
    parser.add_argument(
        "--reduction-factor", type=int, default=3, help="with --scheduler: as in rlnas search"
    )
    parser.add_argument(
        "--warm-budget",
        type=int,
        help="evaluations (asks) per seed on the --warm-start-from table (default: --budget)",
    )


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
    if args.all and (args.table or args.space or args.warm_start_from):
        print(
            "rlnas bench: --all runs every shipped table: give it no table, no --space and no "
            "--warm-start-from",
            file=sys.stderr,
        )
        return 2
    if args.warm_budget is not None and not args.warm_start_from:
        print("rlnas bench: --warm-budget needs --warm-start-from TABLE", file=sys.stderr)
        return 2
    from search.bench.tables import shipped_tables

    tables = shipped_tables() if args.all else [args.table or "digits-mlp"]
    for i, table in enumerate(tables):
        if i:
            print()
        bench = _bench_scheduled if args.scheduler else _bench_one
        status = bench(args, table, controllers)
        if status:
            return status
    return 0


def _bench_one(args: argparse.Namespace, table: str, controllers: list[str] | None) -> int:
    """Bench one table and print its results; the exit status."""
    reproduce = _reproduce(args, table, controllers)
    try:
        result = run_bench(
            table,
            controllers,
            args.seeds,
            args.budget,
            jobs=args.jobs,
            space=args.space,
            out_dir=Path(args.out, table) if args.out and args.all else args.out,
            tracking_uri=args.tracking_uri,
            track=not args.no_tracking,
            command=reproduce,
            warm_from=args.warm_start_from,
            warm_budget=args.warm_budget,
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


def _bench_scheduled(args: argparse.Namespace, table: str, controllers: list[str] | None) -> int:
    """Simulate schedulers on one table's curves and print the comparison; the exit status."""
    from controller import list_controllers
    from search.bench.scheduled import bench_scheduled, format_scheduled
    from search.bench.tables import load_table
    from search.config import SCHEDULERS

    schedulers = [s.strip() for s in args.scheduler.split(",") if s.strip()]
    unknown = [s for s in schedulers if s not in SCHEDULERS]
    if unknown or not schedulers:
        print(
            f"rlnas bench: --scheduler {args.scheduler!r}: expected some of "
            f"{', '.join(SCHEDULERS)}",
            file=sys.stderr,
        )
        return 2
    controllers = controllers or list_controllers()
    try:
        if args.seeds < 1 or args.budget < 1 or args.reduction_factor < 2 or args.grace_epochs < 1:
            raise BenchError(
                "--seeds, --budget and --grace-epochs must be >= 1, --reduction-factor >= 2"
            )
        for spec in controllers:
            check_spec(spec)
        summaries, epoch_budget = bench_scheduled(
            load_table(table, args.space),
            controllers,
            schedulers,
            args.seeds,
            args.budget,
            args.grace_epochs,
            args.reduction_factor,
            args.jobs,
        )
    except BenchError as exc:
        print(f"rlnas bench: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"{table}: {args.seeds} seeds, early stopping simulated on the learning curves")
    print(format_scheduled(summaries, epoch_budget))
    command = ["rlnas", "bench", table, "--controllers", ",".join(controllers)]
    command += ["--scheduler", ",".join(schedulers), "--seeds", str(args.seeds)]
    command += ["--budget", str(args.budget), "--grace-epochs", str(args.grace_epochs)]
    command += ["--reduction-factor", str(args.reduction_factor)]
    print(f"reproduce: {shlex.join(command)}")
    return 0


def _reproduce(args: argparse.Namespace, table: str, controllers: list[str] | None) -> str:
    """The command that runs this bench again, every controller named."""
    if controllers is None:
        from controller import list_controllers

        controllers = list_controllers()
    command = ["rlnas", "bench", table, "--controllers", ",".join(controllers)]
    command += ["--seeds", str(args.seeds), "--budget", str(args.budget)]
    if args.space:
        command += ["--space", str(args.space)]
    if args.warm_start_from:
        command += ["--warm-start-from", str(args.warm_start_from)]
        command += ["--warm-budget", str(args.warm_budget or args.budget)]
    return shlex.join(command)


def main(argv: list[str] | None = None) -> int:
    """``python -m search.bench ...``: the same as `rlnas bench`."""
    import search.bench

    doc = search.bench.__doc__ or ""
    parser = argparse.ArgumentParser(prog="rlnas bench", description=doc.splitlines()[0])
    add_bench_arguments(parser)
    return run_bench_command(parser.parse_args(argv))
