"""The parent run's pictures, drawn once a search ends (and each time a resumed one ends).

The numbers come from the search's log and, for curves over time, from MLflow itself (the
parent's ``controller.*`` series and the best children's per-epoch metrics), so a resumed
search draws its whole history. Nothing here runs between one child and the next. A picture
that cannot be drawn is left out with a warning: it never costs the search.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Collection
from pathlib import Path

import pandas as pd

from search import plots
from search.progress import format_seconds
from search.records import ChildRecord, SearchLog, child_run_name

__all__ = ["PICTURES", "TOP_CURVES", "log_pictures"]

PICTURES = (
    "rewards.png",
    "controller.png",
    "pareto.png",
    "learning_curves.png",
    "best_samples.png",
)
"""What the parent run may hold, each where it has something to show (docs/mlflow.md)."""
TOP_CURVES = 10
"""Children whose learning curves ``learning_curves.png`` draws: the leaderboard's first."""
COUNTERS = frozenset({"controller.asked", "controller.told", "controller.pending"})
"""Controller statistics that only count; left out of ``controller.png``."""

Draw = Callable[[Path], bool]
"""Writes one picture to a path; False when there is nothing to show."""


def log_pictures(
    tracker, log: SearchLog, board: pd.DataFrame, lower_is_better: Collection[str] = ()
) -> list[str]:
    """Draw the pictures of the search `tracker` holds and log them into its parent run.

    Args:
        tracker: The search's `search.tracking.Tracker`.
        log: Its children.
        board: ``log``'s leaderboard.
        lower_is_better: Metrics of which less is better (`trainers.Trainer.lower_is_better`).

    Returns:
        The names logged, in `PICTURES` order.
    """
    draws: dict[str, Draw] = {
        "rewards.png": lambda path: _rewards(log, path),
        "controller.png": lambda path: _controller(tracker, path),
        "pareto.png": lambda path: _pareto(log, lower_is_better, path),
        "learning_curves.png": lambda path: _curves(tracker, log, board, path),
        "best_samples.png": lambda path: _samples(tracker, log.best, path),
    }
    drawn = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in PICTURES:
            try:
                if draws[name](Path(tmp, name)):
                    drawn.append(name)
            except Exception as exc:  # a picture is never worth the search
                Path(tmp, name).unlink(missing_ok=True)
                warnings.warn(f"{name} left out of the parent run: {exc}", stacklevel=2)
        if drawn:
            tracker.client.log_artifacts(tracker.parent_run_id, tmp)
    return drawn


def _rewards(log: SearchLog, path: Path) -> bool:
    scored = [c for c in log.finished if c.reward is not None]
    if not scored:
        return False
    plots.rewards_plot(
        [c.number for c in scored],
        [float(c.reward or 0.0) for c in scored],
        f"{log.budget} children in {format_seconds(log.elapsed)}",
        path,
    )
    return True


def _controller(tracker, path: Path) -> bool:
    client, run_id = tracker.client, tracker.parent_run_id
    names = [k for k in client.get_run(run_id).data.metrics if k.startswith("controller.")]
    series = {
        name: [(m.step, m.value) for m in client.get_metric_history(run_id, name)]
        for name in sorted(set(names) - COUNTERS)
    }
    series = {name: pairs for name, pairs in series.items() if pairs}
    if not series:
        return False
    plots.controller_stats(series, path)
    return True


def _validation_metric(child: ChildRecord) -> str:
    """The validation metric a child's reward is made of: ``val_`` + its test metric's name."""
    return "val_" + child.test_metric.removeprefix("test_")


def _pareto(log: SearchLog, lower_is_better: Collection[str], path: Path) -> bool:
    best = log.best
    if best is None:
        return False
    metric = _validation_metric(best)
    if metric not in best.metrics:
        metric = "reward"
    points = [
        (c.number, float(c.metrics["params"]), float(c.metrics[metric]))
        for c in log.finished
        if c.metrics.get("params") is not None and c.metrics.get(metric) is not None
    ]
    if not points:
        return False
    lower = metric.removeprefix("val_") in lower_is_better and metric != "reward"
    plots.pareto_plot(
        points, metric, path, lower_is_better=lower, best=best.number, left_out=len(log.stopped)
    )
    return True


def _curves(tracker, log: SearchLog, board: pd.DataFrame, path: Path) -> bool:
    best = log.best
    if best is None or board.empty:
        return False
    metric = _validation_metric(best)
    curves = {}
    top = board.head(TOP_CURVES)
    for number, run_id in zip(top["child"], top["run_id"], strict=True):
        history = tracker.client.get_metric_history(run_id, metric) if run_id else []
        if history:
            curves[child_run_name(int(number))] = [(m.step, m.value) for m in history]
    if not curves:
        return False
    plots.learning_curves(curves, metric, path)
    return True


def _samples(tracker, best: ChildRecord | None, path: Path) -> bool:
    """The best child's sample grid of its kept epoch (else its last), for generative
    children."""
    if best is None or not best.run_id:
        return False
    grids = sorted(a.path for a in tracker.client.list_artifacts(best.run_id, "samples"))
    if not grids:
        return False
    epoch = best.metrics.get("best_epoch")
    kept = f"samples/epoch-{int(epoch):03d}.png" if epoch is not None else ""
    chosen = kept if kept in grids else grids[-1]
    with tempfile.TemporaryDirectory() as tmp:
        local = tracker.client.download_artifacts(best.run_id, chosen, tmp)
        path.write_bytes(Path(local).read_bytes())
    return True
