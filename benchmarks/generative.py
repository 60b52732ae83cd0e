"""Does searching beat a hand-written generative model? GAN and VAE searches on digits.

For each family and seed, one search (real Ray, real MLflow) trains the family's hand-written
default architecture first (``include``: ``DEFAULT_IMAGE_GAN`` / ``DEFAULT_IMAGE_VAE``, with the
same epochs as every child) and then the controller's proposals. The search's best child by
validation reward is compared with the default child on the Frechet distance of their samples
to the TEST split, in the reference classifier's feature space (lower is better); the default
child is left out when picking the searched best. A seed is a win when the searched best has
the lower test FD. The results in RESULTS.md#generative-models-searched-against-hand-written
came from (25-35 minutes and about 15 minutes on 2 busy cores)::

    python benchmarks/generative.py --families gan --epochs 30 --budget 40
    python benchmarks/generative.py --families vae --epochs 60 --budget 12
    python benchmarks/generative.py --families vae --seeds 2 --budget 8   # a quicker look

It prints one line per search and a summary, and writes ``generative-<families>.csv`` to ``--out``
(default ``runs/bench/generative``); the searches are in MLflow (``bench-digits-gan``, ...).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient

from search.config import SearchConfig
from search.records import LeaderboardRow, child_run_name
from search.results import child_runs, leaderboard_row
from search.runner import run_search
from spaces.families.gan import DEFAULT_IMAGE_GAN
from spaces.families.vae import DEFAULT_IMAGE_VAE

DEFAULTS = {"gan": DEFAULT_IMAGE_GAN, "vae": DEFAULT_IMAGE_VAE}


@dataclass
class Child:
    """A child of one search: its leaderboard row and its test FD (infinite without one)."""

    row: LeaderboardRow
    test_fd: float

    @property
    def reward(self) -> float:
        return 0.0 if self.row.reward is None else self.row.reward


def children_of(uri: str, parent_run_id: str, experiment_id: str) -> list[Child]:
    """Every child of one search, failed ones included (no reward, no test FD)."""
    client = MlflowClient(tracking_uri=uri)
    runs = child_runs(client, experiment_id, parent_run_id, finished_only=False)
    return [Child(leaderboard_row(r), r.data.metrics.get("test_fd", math.inf)) for r in runs]


def compare(family: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One search with the default included; the searched best against the default."""
    config = SearchConfig(
        task="digits",
        space=family,
        controller=args.controller,
        budget=args.budget,
        epochs=args.epochs,
        scheduler="fifo",  # the default and the searched children trained alike, in full
        seed=seed,
        name=f"bench-digits-{family}",
        include=[DEFAULTS[family]],
        tracking_uri=args.tracking_uri,
        quiet=True,
    )
    started = time.monotonic()
    result = run_search(config)
    children = children_of(result.tracking_uri, result.parent_run_id, result.experiment_id)
    default = next(c for c in children if c.row.included)
    searched = max(
        (c for c in children if not c.row.included), key=lambda c: c.reward, default=None
    )
    best_fd = searched.test_fd if searched else math.inf
    return {
        "family": family,
        "seed": seed,
        "default_test_fd": default.test_fd,
        "default_reward": default.reward,
        "default_failure": default.row.failure,
        "searched_test_fd": best_fd,
        "searched_reward": searched.reward if searched else 0.0,
        "searched_child": child_run_name(searched.row.child) if searched else "",
        "searched_architecture": searched.row.architecture if searched else "",
        "children": len(children),
        "failed_children": sum(1 for c in children if c.row.failure),
        "win": best_fd < default.test_fd,
        "seconds": round(time.monotonic() - started, 1),
        "parent_run_id": result.parent_run_id,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="gan,vae", help="comma-separated: gan, vae")
    parser.add_argument("--seeds", type=int, default=5, help="search seeds 0..N-1 (default 5)")
    parser.add_argument("--budget", type=int, default=12, help="children per search, default incl.")
    parser.add_argument("--epochs", type=int, default=15, help="epochs per child (default 15)")
    parser.add_argument("--controller", default="reinforce")
    parser.add_argument("--tracking-uri", default=None, help="default sqlite:///runs/mlflow.db")
    parser.add_argument("--out", default="runs/bench/generative", help="folder for the CSV")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(DEFAULTS))
    if unknown:
        parser.error(f"--families: unknown {unknown}; expected some of {sorted(DEFAULTS)}")
    rows = []
    for family in families:
        for seed in range(args.seeds):
            row = compare(family, seed, args)
            rows.append(row)
            print(
                f"{family} seed {seed}: searched best test FD {row['searched_test_fd']:.3f} "
                f"({row['searched_child']}) vs default {row['default_test_fd']:.3f}: "
                f"{'win' if row['win'] else 'loss'} "
                f"[{row['children']} children, {row['failed_children']} failed, "
                f"{row['seconds']:.0f} s]",
                flush=True,
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"generative-{'-'.join(families)}.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    for family in families:
        wins = [r for r in rows if r["family"] == family and r["win"]]
        fds = pd.DataFrame([r for r in rows if r["family"] == family])
        print(
            f"{family}: search beat the default in {len(wins)} of {args.seeds} seeds; median "
            f"test FD searched {fds['searched_test_fd'].median():.3f} vs default "
            f"{fds['default_test_fd'].median():.3f}"
        )
    print(f"wrote {csv}")
    print("reproduce: python benchmarks/generative.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
