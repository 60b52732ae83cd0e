"""Finding recorded searches and their children: what `rlnas list` and `rlnas show` print."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from search.formatting import architecture_summary
from search.records import child_run_name
from search.results import ResultsError, open_store
from search.tags import (
    ARCHITECTURE_TAG,
    BEST_RUN_ID_TAG,
    FAILURE_TAG,
    PARENT_RUN_TAG,
    ROLE_TAG,
    STATUS_TAG,
    tag_filter,
)

__all__ = ["format_searches", "latest_search", "searches", "show_child", "show_search"]

SEARCH_COLUMNS = ("name", "status", "children", "failed", "budget", "best_reward", "started")
"""What `searches` says of each search (and ``run_id``, its parent run)."""
SHOWN_CONFIG = ("task", "space", "controller", "budget", "epochs", "reward", "seed")
"""The settings `show_search` prints of a search's config (all are in its parent run)."""


def searches(tracking_uri: str | None = None) -> pd.DataFrame:
    """Every search recorded in the store, newest first: `SEARCH_COLUMNS` and ``run_id``."""
    uri, client = open_store(tracking_uri)
    names = {e.experiment_id: e.name for e in client.search_experiments()}
    parents = client.search_runs(
        list(names),
        tag_filter(ROLE_TAG, "search"),
        order_by=["attributes.start_time DESC"],
        max_results=5000,
    )
    rows = []
    for run in parents:
        metrics, params = run.data.metrics, run.data.params
        rows.append(
            {
                "name": names[run.info.experiment_id],
                "status": run.info.status,
                "children": _trained(metrics),
                "failed": int(metrics.get("children_failed", 0)),
                "budget": int(params.get("budget", 0)),
                "best_reward": metrics.get("best_reward"),
                "started": _when(run.info.start_time),
                "run_id": run.info.run_id,
            }
        )
    return pd.DataFrame(rows, columns=[*SEARCH_COLUMNS, "run_id"])


def format_searches(frame: pd.DataFrame) -> str:
    """`searches` as a table: one line per search."""
    if frame.empty:
        return "(no searches yet: run `rlnas search` first)"
    width = max(12, *(len(n) for n in frame["name"]))
    lines = [
        f"{'name':<{width}}  {'status':<8}  {'children':>8}  {'failed':>6}  {'best':>7}  "
        f"{'started':<16}  parent run"
    ]
    for row in frame.itertuples(index=False):
        best = "-" if pd.isna(row.best_reward) else f"{row.best_reward:.4f}"
        lines.append(
            f"{row.name:<{width}}  {row.status:<8}  {f'{row.children}/{row.budget}':>8}  "
            f"{row.failed:>6}  {best:>7}  {row.started:<16}  {row.run_id}"
        )
    return "\n".join(lines)


def latest_search(client: MlflowClient, name: str, uri: str) -> Run:
    """The parent run of the latest search called `name`; `ResultsError` naming the known
    searches if there is none."""
    experiment = client.get_experiment_by_name(name)
    parents = (
        client.search_runs(
            [experiment.experiment_id],
            tag_filter(ROLE_TAG, "search"),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiment is not None
        else []
    )
    if not parents:
        known = sorted(
            e.name for e in client.search_experiments() if e.name != "Default"
        )  # bench experiments too: `rlnas list` has only searches
        raise ResultsError(f"no search named {name!r} in {uri} (known: {', '.join(known)})")
    return parents[0]


def show_search(name: str, tracking_uri: str | None = None) -> str:
    """The latest search called `name`: its settings, its best child and where the model is."""
    uri, client = open_store(tracking_uri)
    parent = latest_search(client, name, uri)
    metrics, params = parent.data.metrics, parent.data.params
    stopped = int(metrics.get("children_stopped", 0))
    lines = [
        f"search {name}: {parent.info.status}, started {_when(parent.info.start_time)}, "
        f"{_trained(metrics)} of {params.get('budget', '?')} children trained"
        f"{f' ({stopped} stopped early)' if stopped else ''}, "
        f"{int(metrics.get('children_failed', 0))} failed (parent run {parent.info.run_id})",
        "settings: "
        + ", ".join(
            f"{k} {params[k]}" for k in SHOWN_CONFIG if params.get(k) not in (None, "None")
        ),
    ]
    best_id = parent.data.tags.get(BEST_RUN_ID_TAG)
    if best_id:
        best = client.get_run(best_id)
        lines += _child_lines(best, f"best: {best.info.run_name}")
        lines.append(f"registered model: {_registered(client, name, parent.info.run_id)}")
    lines.append(f"artifacts: {parent.info.artifact_uri} (pictures, leaderboard.csv, ...)")
    return "\n".join(lines)


def show_child(name: str, child: str, tracking_uri: str | None = None) -> str:
    """One child of the latest search called `name`: `child` is ``child-007`` or ``7``."""
    uri, client = open_store(tracking_uri)
    parent = latest_search(client, name, uri)
    try:
        number = int(child.removeprefix("child-"))
    except ValueError:
        raise ResultsError(
            f"{child!r} is not a child: give its number, e.g. 7 or child-007"
        ) from None
    run_name = child_run_name(number)
    runs = client.search_runs(
        [parent.info.experiment_id],
        f"{tag_filter(PARENT_RUN_TAG, parent.info.run_id)} and attributes.run_name = '{run_name}'",
        order_by=["attributes.start_time DESC"],
    )
    if not runs:
        raise ResultsError(
            f"search {name!r} (parent run {parent.info.run_id}) has no {run_name}; "
            f"`rlnas leaderboard {name}` lists its children"
        )
    return "\n".join(_child_lines(runs[0], f"{run_name} of search {name}"))


def _child_lines(run: Run, title: str) -> list[str]:
    """A child's run under `title`: status, architecture, metrics and its model's address."""
    tags, metrics = run.data.tags, run.data.metrics
    status = tags.get(STATUS_TAG, run.info.status.lower())
    lines = [f"{title}: {status} (run {run.info.run_id})"]
    if tags.get(FAILURE_TAG):
        lines.append(f"failure: {tags[FAILURE_TAG]}")
    architecture = json.loads(tags.get(ARCHITECTURE_TAG) or "{}")
    lines.append(f"architecture: {architecture_summary(architecture)}")
    shown = {k: v for k, v in sorted(metrics.items()) if not k.startswith(("train_", "lr"))}
    lines.append("metrics: " + ", ".join(f"{k} {_number(v)}" for k, v in shown.items()))
    lines.append(f"model: {run.info.artifact_uri}/model")
    return lines


def _registered(client: MlflowClient, name: str, parent_run_id: str) -> str:
    """This search's version of the registered model `name`, and where alias ``best`` is."""
    versions = client.search_model_versions(f"name = '{name}'")
    ours = [v for v in versions if v.tags.get("parent_run_id") == parent_run_id]
    if not ours:
        return "none"
    version = ours[0].version
    best = ""
    with contextlib.suppress(MlflowException):  # no alias yet
        best = client.get_model_version_by_alias(name, "best").version
    where = "is" if str(best) == str(version) else f"is version {best}, not"
    return f"models:/{name}/{version} (alias best {where} this one; load_best({name!r}))"


def _number(value: Any) -> str:
    value = float(value)
    return f"{int(value):,}" if value.is_integer() and abs(value) >= 1000 else f"{value:.4g}"


def _when(millis: int | None) -> str:
    return "-" if not millis else time.strftime("%Y-%m-%d %H:%M", time.localtime(millis / 1000))


def _trained(metrics: dict[str, float]) -> int:
    """Children that ended with a reward: trained in full, or stopped early by a scheduler."""
    return int(metrics.get("children_finished", 0) + metrics.get("children_stopped", 0))
