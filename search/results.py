"""Reading finished searches back from MLflow: the best model and the leaderboard."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from mlflow.artifacts import download_artifacts
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from search.config import default_tracking_uri, sqlite_path
from search.mlflow_client import quiet_downloads
from search.records import DEFAULT_TEST_METRIC, LeaderboardRow, child_number, leaderboard_frame
from search.tags import (
    ARCHITECTURE_TAG,
    CONFIRMATION_TAG,
    FAILURE_TAG,
    INCLUDED_TAG,
    PARENT_RUN_TAG,
    ROLE_TAG,
    STOPPED_EPOCH_TAG,
    TEST_METRIC_TAG,
    tag_filter,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ResultsError",
    "child_runs",
    "leaderboard",
    "leaderboard_row",
    "load_best",
    "open_store",
    "registered_model_dir",
]


class ResultsError(LookupError):
    """No such search, or it has no finished child."""


def open_store(tracking_uri: str | None = None) -> tuple[str, MlflowClient]:
    """A client for reading; a SQLite file that does not exist is an error, not created."""
    uri = tracking_uri or default_tracking_uri()
    path = sqlite_path(uri)
    if path is not None and not path.exists():
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
    from search.model_files import load_model_dir  # torch: not for reading records

    with registered_model_dir(name, tracking_uri=tracking_uri) as path:
        return load_model_dir(path, device=device)


@contextmanager
def registered_model_dir(
    name: str, version: int | None = None, tracking_uri: str | None = None
) -> Iterator[Path]:
    """The model directory (`search.model_files`) of model `name`'s `version` (default: alias
    ``best``), downloaded to a temporary directory for as long as the context lasts."""
    from search.pyfunc import model_dir_in  # torch: not for reading records

    quiet_downloads()
    uri, client = open_store(tracking_uri)
    which = "@best" if version is None else f" version {version}"
    try:
        if version is None:
            found = client.get_model_version_by_alias(name, "best")
        else:
            found = client.get_model_version(name, str(version))
    except MlflowException:
        raise ResultsError(
            f"no model registered as {name}{which} in {uri}; run `rlnas search --name {name}` "
            "first or pass the tracking URI where it ran"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = download_artifacts(artifact_uri=found.source, dst_path=tmp, tracking_uri=uri)
        yield model_dir_in(path)


def leaderboard(
    name: str, top: int = 10, tracking_uri: str | None = None, all_searches: bool = False
) -> pd.DataFrame:
    """The best children of the latest search called `name` (or of all its searches).

    Columns: those of `search.records.LeaderboardRow` (``child`` is the child's number), then
    trainings and mean_reward (of its architecture). Ordered as `search.records.rank_children`
    says.
    """
    uri, client = open_store(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        known = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        raise ResultsError(f"no search named {name!r} in {uri} (searches: {known})")
    parent_run_id = None
    if not all_searches:
        parents = client.search_runs(
            [experiment.experiment_id],
            tag_filter(ROLE_TAG, "search"),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not parents:
            raise ResultsError(f"search {name!r} has no runs in {uri}")
        parent_run_id = parents[0].info.run_id
    runs = child_runs(client, experiment.experiment_id, parent_run_id)
    if not runs:
        raise ResultsError(f"search {name!r} has no finished child in {uri}")
    return leaderboard_frame([leaderboard_row(run) for run in runs]).head(top)


def child_runs(
    client: MlflowClient,
    experiment_id: str,
    parent_run_id: str | None = None,
    finished_only: bool = True,
) -> list[Run]:
    """The child runs of an experiment (of one search: `parent_run_id`), best reward first."""
    filters = tag_filter(ROLE_TAG, "child")
    if finished_only:
        filters += " and attributes.status = 'FINISHED'"
    if parent_run_id is not None:
        filters += " and " + tag_filter(PARENT_RUN_TAG, parent_run_id)
    return client.search_runs(
        [experiment_id], filters, order_by=["metrics.reward DESC"], max_results=5000
    )


def leaderboard_row(run: Run) -> LeaderboardRow:
    """A child's leaderboard row, read from its MLflow run."""
    metrics, tags = run.data.metrics, run.data.tags
    return LeaderboardRow.build(
        child_number(run.info.run_name),
        metrics.get("reward"),
        metrics,
        tags.get(TEST_METRIC_TAG, DEFAULT_TEST_METRIC),
        included=tags.get(INCLUDED_TAG) == "true",
        confirmation=tags.get(CONFIRMATION_TAG) == "true",
        failure=tags.get(FAILURE_TAG, ""),
        run_id=run.info.run_id,
        architecture=tags.get(ARCHITECTURE_TAG, "{}"),
        stopped_epoch=int(tags.get(STOPPED_EPOCH_TAG, 0)),
    )
