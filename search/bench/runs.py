"""Running controllers over a table: one controller seed at a time, every reward told at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.bench.report import BenchResult, write_outputs
from search.bench.stats import summarize
from search.bench.tables import BenchError, Table, load_table

__all__ = [
    "WARM_SUFFIX",
    "ControllerFactory",
    "WarmFrom",
    "check_spec",
    "controller_factory",
    "parse_spec",
    "run_bench",
    "run_controller",
    "run_seeds",
    "seed_pool",
    "worker_table",
]

ControllerFactory = Callable[[Any, int], Any]
"""`factory(space, seed) -> Controller`; a name of a registered controller stands for one."""
WARM_SUFFIX = "-warm"
"""Appended to a controller's name for its warm-started runs (``reinforce-warm``)."""


@dataclass(frozen=True)
class WarmFrom:
    """Warm starts: each seed first searches `table` for `budget` asks, and the controller
    that is measured starts from that one's final state (`Controller.warm_start`)."""

    table: Table
    budget: int


def run_controller(
    table: Table,
    controller: str | ControllerFactory,
    seed: int,
    budget: int,
    warm: WarmFrom | None = None,
) -> np.ndarray:
    """Run one controller seed for `budget` asks; the table rows it evaluated, in ask order.
    With `warm`, the same controller and seed first search ``warm.table``, and this one starts
    from its final state."""
    make = controller_factory(controller)
    c = make(table.space, seed)
    if warm is not None:
        source = make(warm.table.space, seed)
        _search(source, warm.table, warm.budget)
        c.warm_start(source.state_dict(), warm.table.space)
    return _search(c, table, budget)


def _search(controller, table: Table, budget: int) -> np.ndarray:
    """`budget` asks of `controller`, each told its row's reward at once; the rows."""
    reward = table.reward
    rows = np.empty(budget, dtype=np.int64)
    for n in range(budget):
        candidate = controller.ask()
        row = table.index(candidate)
        rows[n] = row
        controller.tell(candidate, float(reward[row]))
    return rows


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A controller with options: ``reinforce:lr=0.01:batch=2`` -> ("reinforce", {...}); each
    value is read as YAML (numbers, ``null``, ``true``)."""
    import yaml

    name, *pairs = spec.split(":")
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BenchError(f"controller {spec!r}: expected NAME:option=value:..., got {pair!r}")
        options[key.strip()] = yaml.safe_load(value)
    return name.strip(), options


def controller_factory(controller: str | ControllerFactory) -> ControllerFactory:
    """`controller` as a factory: a spec (`parse_spec`) or a factory itself."""
    if not isinstance(controller, str):
        return controller
    from controller import make_controller

    name, options = parse_spec(controller)
    return lambda space, seed: make_controller(name, space, seed=seed, **options)


def check_spec(spec: str) -> None:
    """An unknown controller or option of `spec` as one `BenchError`."""
    import dataclasses

    from controller import get_controller

    name, options = parse_spec(spec)
    try:
        known = {f.name for f in dataclasses.fields(get_controller(name).Options)}
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    unknown = sorted(set(options) - known)
    if unknown:
        raise BenchError(
            f"controller {spec!r}: {name} has no option {', '.join(unknown)} "
            f"(its options: {', '.join(sorted(known)) or 'none'})"
        )


def _factories(
    controllers: Sequence[str] | Mapping[str, ControllerFactory] | None,
) -> dict[str, str | ControllerFactory]:
    """Controllers by name; names must be registered (default: every registered one)."""
    from controller import list_controllers

    if controllers is None:
        controllers = list_controllers()
    if isinstance(controllers, Mapping):
        factories: dict[str, str | ControllerFactory] = dict(controllers)
    else:
        factories = {}
        for name in controllers:
            check_spec(name)
            factories[name] = name
    if not factories:
        raise BenchError("no controllers to bench")
    return factories


def run_seeds(
    table: Table,
    controller: str | ControllerFactory,
    seeds: Sequence[int],
    budget: int,
    pool: Executor | None,
    warm: WarmFrom | None = None,
) -> tuple[list[np.ndarray], float]:
    """The `seeds` of one controller (warm-started from `warm` when given), on the `pool`'s
    processes when there is one and the controller is named (a factory may not pickle); the
    rows of each seed and the seconds they took in all."""
    if pool is None or not isinstance(controller, str):
        start = time.perf_counter()
        runs = [run_controller(table, controller, s, budget, warm) for s in seeds]
        return runs, time.perf_counter() - start
    n = len(seeds)
    timed = list(
        pool.map(_timed_run, [controller] * n, list(seeds), [budget] * n, [warm is not None] * n)
    )
    return [rows for rows, _ in timed], sum(seconds for _, seconds in timed)


def seed_pool(
    table: Table, jobs: int, warm: WarmFrom | None = None
) -> AbstractContextManager[Executor | None]:
    """`jobs` worker processes that each receive `table` (and `warm`) once (none for one job)."""
    if jobs <= 1:
        return nullcontext()
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker, never a fork of a process holding torch threads
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_start_worker, initargs=(table, warm)
    )


_worker_table: Table | None = None
"""The table a worker process of `seed_pool` runs its seeds on."""
_worker_warm: WarmFrom | None = None
"""Where that worker's warm-started seeds start from."""


def _start_worker(table: Table, warm: WarmFrom | None) -> None:
    import torch

    global _worker_table, _worker_warm
    _worker_table, _worker_warm = table, warm
    torch.set_num_threads(1)  # the controllers' networks are tiny; threads only cost here


def worker_table() -> Table:
    """In a worker process of `seed_pool`: the table it received."""
    assert _worker_table is not None, "not a worker of seed_pool"
    return _worker_table


def _timed_run(controller: str, seed: int, budget: int, warm: bool) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    rows = run_controller(worker_table(), controller, seed, budget, _worker_warm if warm else None)
    return rows, time.perf_counter() - start


def run_bench(
    table: str | Path | Table,
    controllers: Sequence[str] | Mapping[str, ControllerFactory] | None = None,
    seeds: int = 30,
    budget: int = 400,
    *,
    jobs: int = 1,
    space: str | Path | None = None,
    out_dir: str | Path | None = None,
    tracking_uri: str | None = None,
    track: bool = True,
    command: str | None = None,
    warm_from: str | Path | Table | None = None,
    warm_budget: int | None = None,
) -> BenchResult:
    """Run controllers against a table and write the summary CSV, the regret plot and MLflow.

    Args:
        table: A `Table`, a CSV path or a shipped table's name.
        controllers: Registered controller names, or a mapping name -> ``factory(space, seed)``;
            default: every registered controller.
        seeds: Controller seeds 0..seeds-1 per controller.
        budget: Evaluations (asks) per seed.
        jobs: Processes the seeds of a registered controller are spread over; the results do
            not depend on it (each seed is its own run). ``seconds`` then sums the seeds' own.
        space: The table's space file, when it is not the CSV's path with ``.yaml``.
        out_dir: Where the CSV and PNG go; default ``runs/bench/<table name>``.
        tracking_uri: MLflow tracking URI; default `search.config.default_tracking_uri()`.
        track: Log params, metrics, the CSV and the PNG to MLflow experiment
            ``bench-<table name>`` (one run).
        command: The command that reproduces this bench, logged and written with the results.
        warm_from: Also measure warm starts from this table (a `Table`, a CSV path or a
            shipped table's name, with its own space file beside it): each controller seed
            first searches it for `warm_budget` asks (default `budget`), then a controller of
            the same seed starts on `table` from that final state. Its summary follows the
            controller's own, named with `WARM_SUFFIX`.
        warm_budget: Asks per seed on `warm_from`.

    Raises:
        BenchError: A bad table, an unknown controller, seeds/budget/jobs/warm_budget below 1,
            or a `warm_from` table whose space shares no decision with `table`'s.
    """
    if seeds < 1 or budget < 1 or jobs < 1:
        raise BenchError(f"seeds, budget and jobs must be >= 1, got {seeds}, {budget} and {jobs}")
    if not isinstance(table, Table):
        table = load_table(table, space)
    factories = _factories(controllers)
    warm_budget = budget if warm_budget is None else warm_budget
    warm = None if warm_from is None else _warm_from(table, warm_from, warm_budget)
    summaries = []
    with seed_pool(table, jobs, warm) as pool:
        for name, factory in factories.items():
            runs, seconds = run_seeds(table, factory, range(seeds), budget, pool)
            summaries.append(summarize(table, name, runs, seconds))
            if warm is not None:
                runs, seconds = run_seeds(table, factory, range(seeds), budget, pool, warm)
                summaries.append(summarize(table, name + WARM_SUFFIX, runs, seconds))
    result = BenchResult(table, seeds, budget, summaries)
    if warm is not None:
        result.warm_from, result.warm_budget = warm.table.name, warm.budget

    if out_dir is None:
        from search.config import RUNS_DIR

        out_dir = RUNS_DIR / "bench" / table.name
    write_outputs(result, Path(out_dir))
    if track:
        from search.bench.tracking import log_bench

        result.run_id = log_bench(result, tracking_uri, command)
    return result


def _warm_from(table: Table, source: str | Path | Table, budget: int) -> WarmFrom:
    """The table warm starts come from, checked: it shares decisions with `table`."""
    from controller.warm import SharedDecisions

    if budget < 1:
        raise BenchError(f"the warm budget must be >= 1, got {budget}")
    if not isinstance(source, Table):
        source = load_table(source)
    if not SharedDecisions.between(source.space, table.space).slots:
        raise BenchError(
            f"{source.path}: its space {source.space.name!r} shares no decision with "
            f"{table.name}'s {table.space.name!r}; expected decisions of the same name with a "
            "choice in common"
        )
    return WarmFrom(source, budget)
