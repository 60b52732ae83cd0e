"""`rlnas bench`: controllers against a tabular benchmark, in-process, thousands of evaluations/s.

A table (``search/bench/tables/<name>.csv``, made by ``benchmarks/make_table.py``) holds every
architecture of a small space with the validation and test metric of several training seeds.
The objective looks a proposal up in the table and returns its mean-over-seeds validation
metric, so a controller is scored without training anything and without Ray::

    rlnas bench digits-mlp                           # every registered controller, 30 seeds
    rlnas bench digits-mlp --controllers random,reinforce --seeds 10 --budget 200
    python -m search.bench digits-mlp --no-tracking  # the same without the CLI, no MLflow

Per controller it reports, over the controller seeds 0..S-1:

- **regret** after 25/50/100/200/400 evaluations: how far the best mean validation metric found
  so far is from the table's best (mean +- standard error over seeds; never negative);
- **evaluations to the top 1%**: the first evaluation whose architecture is in the top 1% of the
  table by validation metric (ties with the cut-off included); the median is over all seeds with
  "not reached within the budget" counted as infinitely late, and the not-reached count is given
  beside it (a median of "-" means more than half of the seeds never got there);
- **test metric of the selected architecture**: the architecture with the best validation metric
  among those evaluated (the first one on ties), scored by its mean test metric.

The budget counts asks: a controller that proposes an architecture it has already seen pays
for it again, as it would in a real search without a cache. Every reward is told right after its
ask (one child at a time).

The metric's direction comes from the recipe beside the table (``<name>.json``, key
``higher_is_better``; without it, error-like names such as ``rmse`` or ``nrmse`` are minimised
and anything else maximised). "Best" and "top" follow it. A controller maximises its reward, so
it is told the mean validation metric when higher is better, and ``1 / (1 + mean)`` of a
non-negative error metric otherwise: for ``nrmse`` that is exactly the forecasting trainer's
reward.

Modules: `tables` (loading a table), `runs` (controllers over seeds), `stats` (the numbers
above), `report` (the printed table, CSV and plot), `tracking` (MLflow), `cli`.
"""

from __future__ import annotations

from search.bench.cli import add_bench_arguments, main, run_bench_command
from search.bench.report import BenchResult
from search.bench.runs import ControllerFactory, run_bench, run_controller
from search.bench.stats import CHECKPOINTS, ControllerSummary, median_interval, summarize
from search.bench.tables import (
    LOWER_IS_BETTER,
    TABLES_DIR,
    TOP_FRACTION,
    BenchError,
    Table,
    check_table,
    load_table,
    shipped_tables,
)

__all__ = [
    "TABLES_DIR",
    "CHECKPOINTS",
    "LOWER_IS_BETTER",
    "TOP_FRACTION",
    "BenchError",
    "BenchResult",
    "ControllerFactory",
    "ControllerSummary",
    "Table",
    "add_bench_arguments",
    "check_table",
    "load_table",
    "main",
    "median_interval",
    "run_bench",
    "run_bench_command",
    "run_controller",
    "shipped_tables",
    "summarize",
]
