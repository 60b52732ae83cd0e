"""Early stopping simulated on a table's learning curves: controllers and schedulers compared
by the epochs they spend, in seconds.

Each child is one architecture trained with one of the table's training seeds (drawn from the
controller seed), one child at a time. Its reward so far after epoch ``e`` is the best
validation reward of its curve up to ``e`` (what a trainer reports); the search's own
scheduler (`search.schedulers.make_scheduler`) judges it after every epoch, and the controller
is told its final reward, or, when stopped, the same estimate a real search tells
(`search.schedulers.StoppedChildren`). Children are proposed until the epochs spent reach
the budget.

The child a search would keep at any moment is the full-budget child of highest told reward;
its **regret** is the table's best mean validation metric minus that child's. **Epochs to the
top 1%** count the epochs spent when a full-budget child in the table's top 1% first exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from search.bench.runs import ControllerFactory, controller_factory, seed_pool, worker_table
from search.bench.stats import median_interval, standard_error
from search.bench.tables import BenchError, Table
from search.schedulers import StoppedChildren, make_scheduler

__all__ = [
    "FRACTIONS",
    "ScheduledRun",
    "ScheduledSummary",
    "bench_scheduled",
    "format_scheduled",
    "run_scheduled",
    "summarize_scheduled",
]

FRACTIONS = (0.25, 0.5, 1.0)
"""Shares of the epoch budget after which regret is reported."""


@dataclass
class ScheduledRun:
    """One controller seed under one scheduler: per child, in order."""

    rows: np.ndarray
    epochs: np.ndarray
    """Epochs spent by the end of each child (cumulative)."""
    full: np.ndarray
    """Whether each child trained to the full budget."""
    told: np.ndarray
    """The reward the controller was told."""


class _Trial:
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def _reward_curves(table: Table) -> np.ndarray:
    """Per row, seed and epoch, the reward so far (best epoch up to then) as a trainer reports
    it: the validation metric, or ``1 / (1 + error)``; a diverged epoch adds nothing."""
    if table.curves is None:
        raise BenchError(
            f"{table.path}: no learning curves (val_<metric>_seed<k>_epoch<e> columns): a "
            "scheduler cannot be simulated on it; tables made by benchmarks/make_table.py with "
            "per-epoch columns can"
        )
    values = table.curves if table.higher_is_better else 1.0 / (1.0 + table.curves)
    return np.fmax.accumulate(np.nan_to_num(values, nan=-np.inf), axis=2)


def run_scheduled(
    table: Table,
    controller: str | ControllerFactory,
    seed: int,
    scheduler: str,
    epoch_budget: int,
    grace_epochs: int = 2,
    reduction_factor: int = 3,
) -> ScheduledRun:
    """Propose children until `epoch_budget` epochs are spent, each judged by `scheduler`."""
    curves = _reward_curves(table)
    epochs = curves.shape[2]
    rng = np.random.default_rng(seed)
    ask = controller_factory(controller)(table.space, seed)
    rungs = make_scheduler(scheduler, epochs, grace_epochs, reduction_factor, seed)
    if rungs is not None:
        rungs.set_search_properties("reward", "max")
    estimates = StoppedChildren()
    rows: list[int] = []
    spent: list[int] = []
    full: list[bool] = []
    told: list[float] = []
    total = 0
    while total < epoch_budget:
        candidate = ask.ask()
        row = table.index(candidate)
        curve = curves[row, rng.integers(curves.shape[1])]
        trial = _Trial(str(len(rows)))
        if rungs is not None:
            rungs.on_trial_add(None, trial)
        reached = epochs
        for epoch in range(1, epochs + 1):
            estimates.epoch(trial.trial_id, float(curve[epoch - 1]))
            result = {"training_iteration": epoch, "reward": float(curve[epoch - 1])}
            if rungs is not None and rungs.on_trial_result(None, trial, result) == "STOP":
                reached = epoch
                break
        if reached < epochs:
            _, reward = estimates.stopped(trial.trial_id) or (reached, float(curve[reached - 1]))
        else:
            reward = float(curve[-1])
            estimates.finished(trial.trial_id, reward if math.isfinite(reward) else None)
        if rungs is not None:
            rungs.on_trial_complete(None, trial, result)
        ask.tell(candidate, reward if math.isfinite(reward) else 0.0)
        total += reached
        rows.append(row)
        spent.append(total)
        full.append(reached == epochs)
        told.append(reward)
    return ScheduledRun(np.array(rows), np.array(spent), np.array(full), np.array(told))


@dataclass
class ScheduledSummary:
    """One controller under one scheduler over its seeds."""

    name: str
    scheduler: str
    regret: np.ndarray
    """Regret of the kept child at each of `FRACTIONS` of the epoch budget, (seeds, fractions)."""
    epochs_to_top: list[int | None]
    children: np.ndarray
    """Children proposed per seed within the budget."""
    full_share: np.ndarray
    """Share of those trained to the full budget, per seed."""

    def regret_at(self, i: int) -> tuple[float, float]:
        values = self.regret[:, i]
        return float(values.mean()), standard_error(values)

    @property
    def median_epochs_to_top(self) -> float | None:
        values = [math.inf if e is None else e for e in self.epochs_to_top]
        median = float(np.median(values))
        return median if math.isfinite(median) else None

    @property
    def epochs_to_top_interval(self) -> tuple[float, float]:
        return median_interval([math.inf if e is None else float(e) for e in self.epochs_to_top])


def summarize_scheduled(
    table: Table, name: str, scheduler: str, runs: Sequence[ScheduledRun], epoch_budget: int
) -> ScheduledSummary:
    """The numbers of `runs` (one per seed), see the module's docstring."""
    score, best = table.score, float(table.score.max())
    regrets, to_top, children, share = [], [], [], []
    for run in runs:
        kept = np.full(len(run.rows), -1)
        best_told, best_row = -math.inf, -1
        for i, (row, is_full, reward) in enumerate(zip(run.rows, run.full, run.told, strict=True)):
            if is_full and reward > best_told:
                best_told, best_row = reward, int(row)
            kept[i] = best_row
        found = np.where(kept >= 0, best - score[np.maximum(kept, 0)], np.nan)
        at = [np.searchsorted(run.epochs, f * epoch_budget, side="right") - 1 for f in FRACTIONS]
        worst = best - float(score.min())
        regrets.append([worst if j < 0 or np.isnan(found[j]) else found[j] for j in at])
        top = table.in_top(table.val_mean[run.rows]) & run.full
        hits = np.flatnonzero(top)
        to_top.append(int(run.epochs[hits[0]]) if len(hits) else None)
        children.append(len(run.rows))
        share.append(float(run.full.mean()))
    return ScheduledSummary(
        name, scheduler, np.array(regrets), to_top, np.array(children), np.array(share)
    )


def format_scheduled(summaries: Sequence[ScheduledSummary], epoch_budget: int) -> str:
    """The summaries as a plain-text table."""
    heads = " ".join(f"{f'regret@{int(f * 100)}%':>16}" for f in FRACTIONS)
    width = max([len("controller"), *(len(s.name) for s in summaries)])
    lines = [
        f"{'controller':<{width}} {'scheduler':<10} {'children':>8} {'full':>5} {heads} "
        f"{'epochs to top 1% [95% CI]':>28}"
    ]
    for s in summaries:
        regrets = " ".join(
            f"{m:>9.4f}+-{e:<5.4f}" for m, e in (s.regret_at(i) for i in range(len(FRACTIONS)))
        )
        low, high = s.epochs_to_top_interval
        median = s.median_epochs_to_top
        interval = f"{_epochs(median)} [{_epochs(low)}, {_epochs(high)}]"
        lines.append(
            f"{s.name:<{width}} {s.scheduler:<10} {s.children.mean():>8.1f} "
            f"{s.full_share.mean():>5.0%} {regrets} {interval:>28}"
        )
    lines.append(f"(epoch budget {epoch_budget:,} per seed; regret of the kept child: mean +- se)")
    return "\n".join(lines)


def _epochs(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.0f}"


def bench_scheduled(
    table: Table,
    controllers: Sequence[str],
    schedulers: Sequence[str],
    seeds: int,
    budget: int,
    grace_epochs: int = 2,
    reduction_factor: int = 3,
    jobs: int = 1,
) -> tuple[list[ScheduledSummary], int]:
    """Every controller under every scheduler on seeds 0..seeds-1, with the epochs that
    `budget` children trained in full spend; the summaries and that epoch budget."""
    epochs = _reward_curves(table).shape[2]
    epoch_budget = budget * epochs
    if grace_epochs >= epochs:
        raise BenchError(f"--grace-epochs {grace_epochs}: the table's children train {epochs}")
    summaries = []
    with seed_pool(table, jobs) as pool:
        for name in controllers:
            for scheduler in schedulers:
                setting = {
                    "controller": name,
                    "scheduler": scheduler,
                    "epoch_budget": epoch_budget,
                    "grace_epochs": grace_epochs,
                    "reduction_factor": reduction_factor,
                }
                if pool is None:
                    runs = [run_scheduled(table, seed=s, **setting) for s in range(seeds)]
                else:
                    runs = list(pool.map(_in_worker, [setting] * seeds, range(seeds)))
                summaries.append(summarize_scheduled(table, name, scheduler, runs, epoch_budget))
    return summaries, epoch_budget


def _in_worker(setting: dict, seed: int) -> ScheduledRun:
    """One seed in a worker of `seed_pool` (the table is the worker's own)."""
    return run_scheduled(worker_table(), seed=seed, **setting)
