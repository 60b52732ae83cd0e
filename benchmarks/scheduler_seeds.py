"""Early stopping against full training over seeds: the same search with each scheduler.

Runs ``rlnas search`` as a user would, once per seed and scheduler (one search at a time,
every other setting the same), then reads each search's leaderboard from the tracking store
and prints, per seed, the best child's test accuracy and what the children's training cost
(epochs, and seconds of training summed over children), then the mean test accuracy with its
standard error per scheduler and each scheduler's cost as a share of the first one's::

    python benchmarks/scheduler_seeds.py --task ucr:ItalyPowerDemand --space cnn1d \\
        -- --budget 24 --epochs 12

Arguments after ``--`` go to every search. A search that already finished under its name
(``<prefix>-<scheduler>-<seed>``) is read, not run again, and one cut off is resumed, so a
killed run goes on where it stopped. Training seconds depend on the machine's load: the
epochs are the fair measure.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys

from search.browse import latest_search
from search.results import ResultsError, leaderboard, open_store


def latest_parent(name: str, tracking_uri: str | None):
    """The parent run of the latest search called ``name``, or None if there is none."""
    try:
        uri, client = open_store(tracking_uri)
        return latest_search(client, name, uri)
    except ResultsError:  # no store yet, or no such search
        return None


def run_or_read(name: str, argv: list[str], tracking_uri: str | None):
    """The parent run of the search called `name`: read when it finished, else `argv` (an
    ``rlnas search`` command without ``--name``) run, or resumed when it was cut off."""
    parent = latest_parent(name, tracking_uri)
    status = parent.info.status if parent else None
    if status == "FINISHED":
        return parent
    argv = [*argv, "--name", name, "--quiet", *(["--resume"] if status else [])]
    if tracking_uri:
        argv += ["--tracking-uri", tracking_uri]
    print("$", shlex.join(argv), flush=True)
    if subprocess.run(argv).returncode != 0:
        sys.exit(f"the search {name} failed; run this again to go on")
    return latest_parent(name, tracking_uri)


def summary(board, epochs: int) -> dict[str, float]:
    """The best child's test accuracy and the children's training cost, from a leaderboard."""
    spent = [stop if stop else epochs for stop in board["stopped_epoch"]]
    return {
        "test": float(board["test_accuracy"].iloc[0]),
        "children": len(board),
        "full": int((board["stopped_epoch"] == 0).sum()),
        "epochs": sum(spent),
        "seconds": float(board["train_seconds"].sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="digits")
    parser.add_argument("--space", default="cnn")
    parser.add_argument("--schedulers", default="fifo,asha")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--prefix", default=None, help="search names' prefix")
    parser.add_argument("--tracking-uri", default=None)
    args, extra = parser.parse_known_args()
    if args.seeds < 1:
        parser.error(f"--seeds: expected an integer >= 1, got {args.seeds}")
    extra = [a for a in extra if a != "--"]
    schedulers = args.schedulers.split(",")
    prefix = args.prefix or f"{args.task.replace(':', '-')}-{args.space}"
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in schedulers}
    for seed in range(args.seeds):
        for scheduler in schedulers:
            name = f"{prefix}-{scheduler}-{seed}"
            argv = ["rlnas", "search", "--task", args.task, "--space", args.space]
            argv += ["--scheduler", scheduler, "--seed", str(seed), *extra]
            parent = run_or_read(name, argv, args.tracking_uri)
            board = leaderboard(name, top=100_000, tracking_uri=args.tracking_uri)
            row = summary(board, int(parent.data.params["epochs"]))  # what the search ran with
            rows[scheduler].append(row)
            print(
                f"seed {seed} {scheduler:<9} test {row['test']:.4f}  children {row['children']} "
                f"({row['full']} in full)  epochs {row['epochs']}  "
                f"training {row['seconds'] / 60:.1f} min",
                flush=True,
            )
    base = schedulers[0]
    print(f"\n{args.task}, {args.space}, {args.seeds} seeds, {' '.join(extra)}")
    for scheduler in schedulers:
        tests = [r["test"] for r in rows[scheduler]]
        error = statistics.stdev(tests) / len(tests) ** 0.5 if len(tests) > 1 else 0.0
        share = {
            k: sum(r[k] for r in rows[scheduler]) / sum(r[k] for r in rows[base])
            for k in ("epochs", "seconds")
        }
        print(
            f"{scheduler:<9} test mean {statistics.mean(tests):.4f} +- {error:.4f} "
            f"median {statistics.median(tests):.4f} range {min(tests):.4f}-{max(tests):.4f}; "
            f"epochs {share['epochs']:.0%} and training time {share['seconds']:.0%} of {base}'s"
        )
    print(
        "reproduce: python benchmarks/scheduler_seeds.py "
        f"--task {args.task} --space {args.space} --seeds {args.seeds} -- {' '.join(extra)}"
    )


if __name__ == "__main__":
    main()
