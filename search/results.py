"""Reading finished searches back from MLflow: the best model and the leaderboard."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from torch import nn

from search.config import default_tracking_uri
from search.model_files import load_model_dir
from search.records import rank_children
from search.tracking import ROLE_TAG

__all__ = ["ResultsError", "leaderboard", "load_best", "open_store"]


class ResultsError(LookupError):
    """No such search, or it has no finished child."""


def open_store(tracking_uri: str | None = None) -> tuple[str, MlflowClient]:
    """A client for reading; a SQLite file that does not exist is an error, not created."""
    uri = tracking_uri or default_tracking_uri()
    if urlparse(uri).scheme == "sqlite":
        path = Path(uri[len("sqlite:///") :])
        if not path.exists():
            raise ResultsError(f"no searches recorded at {path}: run `rlnas search` first")
    return uri, MlflowClient(tracking_uri=uri)


def load_best(name: str, tracking_uri: str | None = None, device: str = "cpu") -> nn.Module:
    """The best model of search `name` (registered model alias ``best``), ready to predict.

    Rebuilt from its architecture and weights; no code is unpickled.

    Args:
        name: The search's name, e.g. ``"digits-cnn"``.
        tracking_uri: Default MLFLOW_TRACKING_URI or ``sqlite:///runs/mlflow.db``.
        device: Where the returned model lives.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri, client = open_store(tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, "best")
    except MlflowException:
        raise ResultsError(
            f"no model registered as {name}@best in {uri}; run `rlnas search --name {name}` "
            "first or pass the tracking URI where it ran"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = download_artifacts(artifact_uri=version.source, dst_path=tmp, tracking_uri=uri)
        return load_model_dir(path, device=device)


def leaderboard(
    name: str, top: int = 10, tracking_uri: str | None = None, all_searches: bool = False
) -> pd.DataFrame:
    """The best children of the latest search called `name` (or of all its searches).

    Columns: child, reward, test_metric (e.g. ``test_accuracy``, ``test_fd``), test (its
    value), test_accuracy, params (of one network), ensemble (networks the kept model averages;
    0: one), train_seconds, included, confirmation (an extra training of one of the best
    architectures), failure, run_id, architecture (JSON), trainings and mean_reward (of its
    architecture). Ordered as `search.records.rank_children` says.
    """
    uri, client = open_store(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        raise ResultsError(f"no search named {name!r} in {uri} (searches: {known})")
    filters = f"tags.`{ROLE_TAG}` = 'child' and attributes.status = 'FINISHED'"
    if not all_searches:
        parents = client.search_runs(
            [experiment.experiment_id],
            f"tags.`{ROLE_TAG}` = 'search'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not parents:
            raise ResultsError(f"search {name!r} has no runs in {uri}")
        filters += f" and tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'"
    runs = client.search_runs(
        [experiment.experiment_id], filters, order_by=["metrics.reward DESC"], max_results=5000
    )
    rows = []
    for run in runs:
        metrics, tags = run.data.metrics, run.data.tags
        test_metric = tags.get("rlnas.test_metric", "test_accuracy")
        rows.append(
            {
                "child": run.info.run_name,
                "reward": metrics.get("reward"),
                "test_metric": test_metric,
                "test": metrics.get(test_metric),
                "test_accuracy": metrics.get("test_accuracy"),
                "params": int(metrics["params"]) if "params" in metrics else None,
                "ensemble": int(metrics.get("ensemble") or 0),
                "train_seconds": metrics.get("train_seconds"),
                "included": tags.get("rlnas.included") == "true",
                "confirmation": tags.get("rlnas.confirmation") == "true",
                "failure": tags.get("rlnas.failure", ""),
                "run_id": run.info.run_id,
                "architecture": run.data.tags.get("rlnas.architecture", "{}"),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ResultsError(f"search {name!r} has no finished child in {uri}")
    return rank_children(frame).head(top)
