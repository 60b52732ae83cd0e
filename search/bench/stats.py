"""What a controller's runs over a table amount to: regret, evaluations to the top, selection.

Definitions in `search.bench`'s docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from search.bench.tables import Table

__all__ = [
    "CHECKPOINTS",
    "ControllerSummary",
    "median_interval",
    "standard_error",
    "summarize",
]

CHECKPOINTS = (25, 50, 100, 200, 400)
"""Evaluations after which regret is reported."""


@dataclass
class ControllerSummary:
    """One controller's numbers over its seeds (see `search.bench` for the definitions).

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
        return float(values.mean()), standard_error(values)

    def regret_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard error over seeds of the regret after each evaluation."""
        mean = self.regret.mean(axis=0)
        if len(self.regret) < 2:
            return mean, np.zeros_like(mean)
        return mean, self.regret.std(axis=0, ddof=1) / math.sqrt(len(self.regret))

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

    @property
    def evals_to_top_interval(self) -> tuple[float, float]:
        """Distribution-free 95% interval of that median (`median_interval`); inf where a
        bound is a seed that never reached the top 1%."""
        values = [math.inf if e is None else float(e) for e in self.evals_to_top]
        return median_interval(values)


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval of the median of `values` from their order statistics.

    The interval from the j-th to the (n+1-j)-th smallest value holds the population's median
    with probability ``1 - 2 P(B <= j - 1)``, B ~ Binomial(n, 1/2), whatever the distribution;
    j is the largest rank for which that is at least `confidence` (for n = 100: the 40th and
    61st values). Fewer than 6 values give no such rank at 95%: the whole range.
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return math.nan, math.nan
    alpha = 1.0 - confidence
    j, below = 0, 0.0  # below: P(B <= j - 1) for the next j
    while True:
        below += math.comb(n, j) / 2.0**n
        if 2 * below > alpha:
            break
        j += 1
    if j == 0:
        return ordered[0], ordered[-1]
    return ordered[j - 1], ordered[n - j]


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of the finite values (0 for fewer than two)."""
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return 0.0
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def summarize(
    table: Table, name: str, runs: Sequence[np.ndarray], seconds: float = 0.0
) -> ControllerSummary:
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
