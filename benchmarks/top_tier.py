"""How well can a search on a small archive pick its best child? The spread of the top tier.

On archives of tens of labelled series the cross-validated accuracy saturates: many children
tie at the top (GunPoint: 50 of 50 series right), and the validation-loss tie-breaker decides
among them. This prints, for finished searches in MLflow, how many children share the top
cross-validated accuracy and the spread of their test accuracy, against a reference::

    python benchmarks/top_tier.py GunPoint-s0 GunPoint-s1 --reference 0.995
    python benchmarks/top_tier.py ItalyPowerDemand-s0 --reference 0.960 --tracking-uri URI

A child's cross-validated accuracy is its ``val_accuracy`` at its best epoch (from the metric's
history; the reward is that value less the tie-breaker). The search's pick is its best child;
its kept model, after ``--confirm``, the ensemble of trainings it registered.
"""

from __future__ import annotations

import argparse

import numpy as np

from search.results import leaderboard, open_store
from search.tags import PARENT_RUN_TAG


def best_epoch_accuracy(client, run_id: str) -> float:
    """``val_accuracy`` at the child's best epoch (the epoch the reward came from)."""
    run = client.get_run(run_id)
    best = int(run.data.metrics.get("best_epoch", 0))
    history = {m.step: m.value for m in client.get_metric_history(run_id, "val_accuracy")}
    return history.get(best, run.data.metrics.get("val_accuracy", float("nan")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="search names (the latest search of each)")
    parser.add_argument("--reference", type=float, required=True, help="test accuracy to match")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    _, client = open_store(args.tracking_uri)
    for name in args.names:
        board = leaderboard(name, top=10_000, tracking_uri=args.tracking_uri)
        board = board[board["failure"] == ""]
        accuracy = np.array([best_epoch_accuracy(client, r) for r in board["run_id"]])
        tier = board[np.isclose(accuracy, accuracy.max(), atol=1e-6)]
        tests = tier["test_accuracy"].to_numpy(dtype=float)
        picked = board.iloc[0]["test_accuracy"]
        parent = client.get_run(client.get_run(board.iloc[0]["run_id"]).data.tags[PARENT_RUN_TAG])
        kept = parent.data.metrics.get("best_test_accuracy", picked)
        print(
            f"{name}: {len(board)} children, {len(tier)} at the top cross-validated accuracy "
            f"{accuracy.max():.4f}; their test accuracy min {tests.min():.4f} median "
            f"{np.median(tests):.4f} max {tests.max():.4f}, {int((tests >= args.reference).sum())}"
            f" reach {args.reference}; the search's pick: {picked:.4f}, its kept model: {kept:.4f}"
        )


if __name__ == "__main__":
    main()
