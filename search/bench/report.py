"""A bench's results: the summary rows, the printed table, the CSV and the regret plot."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.bench.stats import CHECKPOINTS, ControllerSummary, standard_error
from search.bench.tables import Table

__all__ = ["BenchResult", "write_outputs"]


@dataclass
class BenchResult:
    """What `run_bench` produced."""

    table: Table
    seeds: int
    budget: int
    summaries: list[ControllerSummary]
    csv_path: Path | None = None
    png_path: Path | None = None
    run_id: str | None = None
    warm_from: str | None = None
    """The table each warm-started summary (named ``<controller>-warm``) first searched."""
    warm_budget: int | None = None
    """Asks per seed on that table."""

    @property
    def checkpoints(self) -> list[int]:
        """The regret checkpoints within the budget (the budget itself when none is)."""
        points = [n for n in CHECKPOINTS if n <= self.budget]
        return points or [self.budget]

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per controller (what the CSV holds)."""
        out = []
        for s in self.summaries:
            row: dict[str, Any] = {
                "controller": s.name,
                "seeds": self.seeds,
                "budget": self.budget,
            }
            for n in self.checkpoints:
                row[f"regret_{n}_mean"], row[f"regret_{n}_se"] = s.regret_at(n)
            median = s.median_evals_to_top
            row["evals_to_top1pct_median"] = "" if median is None else median
            low, high = s.evals_to_top_interval
            row["evals_to_top1pct_low"], row["evals_to_top1pct_high"] = low, high
            row["top1pct_not_reached"] = s.not_reached
            row["selected_val_mean"] = float(s.selected_val.mean())
            row["selected_test_mean"] = float(np.nanmean(s.selected_test))
            row["selected_test_se"] = standard_error(s.selected_test)
            row["seconds"] = s.seconds
            out.append(row)
        return out

    def format(self) -> str:
        """A readable table of the summary."""
        t = self.table
        points = self.checkpoints
        head = ["controller", *(f"regret@{n}" for n in points), "evals to top 1% [95% CI]"]
        head += [f"test {t.metric} of selected", "seconds"]
        lines = [self._cells(s, points) for s in self.summaries]
        widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        top = "from" if t.higher_is_better else "up to"
        text = [
            f"table {t.name}: {len(t.keys)} architectures x {t.val.shape[1]} training seeds; "
            f"best mean validation {t.metric} {t.optimum:.4f}, top 1% {top} "
            f"{t.top_threshold():.4f}",
            f"{self.seeds} controller seeds, budget {self.budget} asks; regret = "
            f"{_regret_meaning(t)} (mean +- standard error); median evaluations to the top 1% "
            "with its distribution-free 95% interval",
            "",
            fmt.format(*head).rstrip(),
            *(fmt.format(*r).rstrip() for r in lines),
        ]
        if self.warm_from is not None:
            text += ["", *self._warm_lines()]
        return "\n".join(text)

    def _warm_lines(self) -> list[str]:
        """Each controller's evaluations to the top 1% without and with its warm start, side
        by side, and the gain (the difference of the medians)."""
        from search.bench.runs import WARM_SUFFIX

        by_name = {s.name: s for s in self.summaries}
        head = ["controller", "cold [95% CI]", "warm [95% CI]", "gain"]
        lines = []
        for s in self.summaries:
            warm = by_name.get(s.name + WARM_SUFFIX)
            if warm is None:
                continue
            cold_median, warm_median = s.median_evals_to_top, warm.median_evals_to_top
            gain = "-"
            if cold_median is not None and warm_median is not None:
                gain = f"{cold_median - warm_median:g}"
            lines.append([s.name, self._reach(s), self._reach(warm), gain])
        widths = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return [
            f"warm start from {self.warm_from} ({self.warm_budget} asks per seed there first): "
            "median evaluations to the top 1%, cold and warm; gain = cold minus warm",
            "",
            fmt.format(*head).rstrip(),
            *(fmt.format(*r).rstrip() for r in lines),
        ]

    def _reach(self, s: ControllerSummary) -> str:
        """Median evaluations to the top 1% with its interval (and how many never got there)."""
        median = s.median_evals_to_top
        low, high = s.evals_to_top_interval
        reach = "-" if median is None else f"{median:g}"
        reach += f" [{_evals(low)}, {_evals(high)}]"
        return reach + (f" ({s.not_reached}/{self.seeds} not reached)" if s.not_reached else "")

    def _cells(self, s: ControllerSummary, points: list[int]) -> list[str]:
        """One controller's line of `format`."""
        return [
            s.name,
            *(_pm(*s.regret_at(n)) for n in points),
            self._reach(s),
            _pm(float(np.nanmean(s.selected_test)), standard_error(s.selected_test)),
            f"{s.seconds:.1f}",
        ]


def _regret_meaning(table: Table) -> str:
    return "optimum minus best found" if table.higher_is_better else "best found minus optimum"


def _evals(value: float) -> str:
    """An evaluation count; ``never`` for a seed that did not reach the top."""
    return f"{value:g}" if np.isfinite(value) else "never"


def _pm(mean: float, se: float) -> str:
    return f"{mean:.4f} +- {se:.4f}"


def write_outputs(result: BenchResult, out_dir: Path) -> None:
    """Write ``bench-<table>.csv`` (`BenchResult.rows`) and ``bench-<table>.png`` (regret over
    evaluations) into `out_dir`; their paths go into `result`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result.csv_path = out_dir / f"bench-{result.table.name}.csv"
    rows = result.rows()
    with result.csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    result.png_path = out_dir / f"bench-{result.table.name}.png"
    _plot(result, result.png_path)


def _plot(result: BenchResult, path: Path) -> None:
    """Mean regret per controller over evaluations, with its standard error band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = np.arange(1, result.budget + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in result.summaries:
        mean, se = s.regret_curve()
        (line,) = ax.plot(evals, mean, label=s.name, drawstyle="steps-post")
        ax.fill_between(evals, mean - se, mean + se, color=line.get_color(), alpha=0.2, step="post")
    t = result.table
    ax.set_xscale("log")
    ax.set_xlabel("evaluations (asks)")
    ax.set_ylabel(f"regret (validation {t.metric}: {_regret_meaning(t)})")
    ax.set_title(f"{t.name}: {len(t.keys)} architectures, {result.seeds} seeds (mean +- s.e.)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
