"""A bench in MLflow: experiment ``bench-<table>``, one run per bench (role ``bench``)."""

from __future__ import annotations

from typing import Any

from search.bench.report import BenchResult
from search.bench.tables import BenchError

__all__ = ["log_bench"]


def log_bench(result: BenchResult, tracking_uri: str | None, command: str | None) -> str:
    """Log the bench's params, per-controller metrics, CSV, PNG and printed summary; returns
    the run id.

    Raises:
        BenchError: `tracking_uri` is a server that does not answer.
    """
    from search.config import ConfigError, default_tracking_uri
    from search.tags import ROLE_TAG
    from search.tracking import Tracker, mlflow_metrics, mlflow_params

    try:
        tracker = Tracker(tracking_uri or default_tracking_uri(), f"bench-{result.table.name}")
    except ConfigError as exc:
        raise BenchError(str(exc)) from None
    try:
        client = tracker.client
        run_id = client.create_run(tracker.experiment_id, tags={ROLE_TAG: "bench"}).info.run_id
        client.log_batch(
            run_id,
            params=mlflow_params(_params(result, command)),
            metrics=mlflow_metrics(_metrics(result)),
        )
        client.log_artifact(run_id, str(result.csv_path))
        client.log_artifact(run_id, str(result.png_path))
        client.log_text(run_id, result.format() + "\n", "summary.txt")
        client.set_terminated(run_id)
    finally:
        tracker.close()
    return run_id


def _params(result: BenchResult, command: str | None) -> dict[str, Any]:
    table = result.table
    params: dict[str, Any] = {
        "table": str(table.path),
        "controllers": ",".join(s.name for s in result.summaries),
        "seeds": result.seeds,
        "budget": result.budget,
        "architectures": len(table.keys),
        "metric": table.metric,
        "higher_is_better": table.higher_is_better,
        "training_seeds": table.val.shape[1],
    }
    if result.warm_from is not None:
        params["warm_start_from"] = result.warm_from
        params["warm_budget"] = result.warm_budget
    if command:
        params["command"] = command
    return params


def _metrics(result: BenchResult) -> dict[str, Any]:
    """The summary rows' numbers, each named ``<controller>.<column>``."""
    return {
        f"{row['controller']}.{key}": value
        for row in result.rows()
        for key, value in row.items()
        if key not in ("controller", "seeds", "budget")
    }
