"""A search's pictures, drawn from plain numbers into PNG files (matplotlib's Agg canvas).

Each function draws one figure and knows nothing of MLflow; `search.pictures` gathers the
numbers and logs the files into the parent run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "Point",
    "controller_stats",
    "learning_curves",
    "pareto_front",
    "pareto_plot",
    "rewards_plot",
]

Point = tuple[int, float, float]
"""A finished child: (its number, its parameter count, its validation metric)."""


@contextmanager
def _figure(path: Path, rows: int = 1, cols: int = 1, size=(6.4, 4.0)) -> Iterator[Any]:
    """A figure of ``rows x cols`` axes, saved to `path` and closed on exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(rows, cols, figsize=size, dpi=100, squeeze=False)
    for ax in axes.flat:  # children and epochs are counted: whole numbers on x
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def rewards_plot(numbers: Sequence[int], rewards: Sequence[float], title: str, path: Path) -> None:
    """Each child's reward by its number, and the best reward of the children up to it."""
    order = sorted(range(len(numbers)), key=lambda i: numbers[i])
    xs = [numbers[i] for i in order]
    ys = [rewards[i] for i in order]
    best = [max(ys[: i + 1]) for i in range(len(ys))]
    with _figure(path, size=(6.4, 3.6)) as (_, axes):
        ax = axes[0][0]
        ax.plot(xs, ys, "o", alpha=0.6, label="child reward")
        ax.step(xs, best, "-", where="post", label="best so far")
        ax.set(xlabel="child", ylabel="reward", title=title)
        ax.legend(loc="lower right")


def controller_stats(series: Mapping[str, Sequence[tuple[int, float]]], path: Path) -> None:
    """One small chart per controller statistic: its (step, value) pairs, step = children
    ended."""
    names = sorted(series)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    with _figure(path, rows, cols, size=(3.6 * cols, 2.6 * rows)) as (fig, axes):
        for i, ax in enumerate(axes.flat):
            if i >= len(names):
                ax.set_visible(False)
                continue
            steps, values = zip(*sorted(series[names[i]]), strict=True)
            ax.plot(steps, values, "-", marker="." if len(steps) < 40 else None)
            ax.set_title(names[i].removeprefix("controller."), fontsize=10)
            ax.set_xlabel("children ended", fontsize=8)
            ax.tick_params(labelsize=8)
        fig.suptitle("controller statistics")


def pareto_front(points: Sequence[Point], lower_is_better: bool = False) -> list[Point]:
    """The children no other child beats on both counts (fewer or equal parameters and a better
    or equal metric, one strictly), by parameter count."""
    sign = -1.0 if lower_is_better else 1.0
    front: list[Point] = []
    best = -math.inf
    for point in sorted(points, key=lambda p: (p[1], -sign * p[2])):
        if sign * point[2] > best:
            front.append(point)
            best = sign * point[2]
    return front


def pareto_plot(
    points: Sequence[Point],
    metric: str,
    path: Path,
    lower_is_better: bool = False,
    best: int | None = None,
    left_out: int = 0,
) -> None:
    """`metric` against parameter count (log scale), the Pareto front joined and labelled;
    `best`: the number of the search's best child, ringed; `left_out`: children stopped early
    and not shown (their metric is of an earlier epoch), said in the title."""
    front = pareto_front(points, lower_is_better)
    with _figure(path) as (_, axes):
        ax = axes[0][0]
        ax.scatter([p[1] for p in points], [p[2] for p in points], alpha=0.5, label="child")
        ax.step(
            [p[1] for p in front],
            [p[2] for p in front],
            "-o",
            where="post",
            color="tab:red",
            label="Pareto front",
        )
        for number, params, value in front:
            ax.annotate(str(number), (params, value), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
        for number, params, value in points:
            if number == best:
                ax.plot(params, value, "o", ms=12, mfc="none", mec="black", label="best reward")
        if min(p[1] for p in points) > 0:
            ax.set_xscale("log")
        direction = "lower is better" if lower_is_better else "higher is better"
        ax.set(xlabel="parameters", ylabel=f"{metric} ({direction})")
        title = f"{metric} against size: {len(front)} of {len(points)} on the front"
        if left_out:
            title += f"\n({left_out} stopped early, not shown)"
        ax.set_title(title)
        ax.legend(loc="best", fontsize=8)


def learning_curves(
    curves: Mapping[str, Sequence[tuple[int, float]]], metric: str, path: Path
) -> None:
    """`metric` per epoch of each child in `curves` (label -> (epoch, value) pairs), in the
    order given (best first)."""
    with _figure(path, size=(6.4, 4.2)) as (_, axes):
        ax = axes[0][0]
        for label, pairs in curves.items():
            epochs, values = zip(*sorted(pairs), strict=True)
            ax.plot(epochs, values, "-", marker="." if len(epochs) < 40 else None, label=label)
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} of the {len(curves)} best children")
        ax.legend(fontsize=7, ncol=2)
