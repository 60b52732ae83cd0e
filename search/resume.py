"""Finding a search to resume, and checking that a resume continues the same search."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException

from search.config import ConfigError, SearchConfig
from search.state import ARTIFACT_DIR, FILE_NAME, read_state, state_path
from search.tags import (
    KILLED_TAG,
    PARENT_RUN_TAG,
    ROLE_TAG,
    STATUS_TAG,
    TRIAL_ID_TAG,
    tag_filter,
)

__all__ = [
    "MAY_CHANGE",
    "Resume",
    "find_search",
    "load_resume",
    "mark_cut_off",
    "merged_config",
    "unfinished_search",
]

MAY_CHANGE = frozenset(
    {
        "address", "concurrency", "cpus_per_trial", "gpus_per_trial", "quiet", "tracking_uri",
        "tracking_outage", "storage", "child_timeout", "max_failures", "time_budget",
    }
)  # fmt: skip
"""Settings of where and how a search runs, which a resume may change (and a larger budget)."""
ENDED_UNFINISHED = ("RUNNING", "KILLED", "FAILED")
"""Parent run statuses of a search that may have work left."""


@dataclass
class Resume:
    """A search to continue: its parent run and saved state."""

    run_id: str
    status: str
    state: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return self.state["config"]

    @property
    def progress(self) -> str:
        children = self.state["log"]["children"]
        done = sum(1 for c in children if c["status"] in ("finished", "failed"))
        return f"{done} of {self.state['log']['budget']} children ended"


def _searches(client, name: str) -> list:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return []
    return client.search_runs(
        [experiment.experiment_id],
        filter_string=tag_filter(ROLE_TAG, "search"),
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )


def find_search(client, name: str, run_id: str | None = None):
    """The latest search of that name, or its run `run_id`."""
    runs = _searches(client, name)
    if run_id:
        runs = [r for r in runs if r.info.run_id.startswith(run_id)]
        if not runs:
            raise ConfigError(f"no search named {name!r} has a parent run {run_id!r}")
    if not runs:
        raise ConfigError(f"no search named {name!r} in this tracking store")
    return runs[0]


def _download_state(client, run_id: str, into: str) -> str | None:
    try:
        return client.download_artifacts(run_id, f"{ARTIFACT_DIR}/{FILE_NAME}", into)
    except (MlflowException, OSError):
        return None


def load_resume(client, run, storage: str) -> Resume:
    """The saved state of `run` (a search's parent run): the local file, else the copy in the
    run's artifacts (a resume on another machine that shares the tracking store)."""
    run_id = run.info.run_id
    path = state_path(storage, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        source = str(path) if path.is_file() else _download_state(client, run_id, tmp)
        if source is None:
            raise ConfigError(
                f"search run {run_id} has no saved state (neither {path} nor its "
                f"{ARTIFACT_DIR}/ artifact): it cannot be resumed"
            )
        try:
            state = read_state(source)
        except Exception as exc:
            raise ConfigError(f"cannot read the saved state {source}: {exc}") from None
    return Resume(run_id, run.info.status, state)


def _driver_alive(state: dict[str, Any]) -> bool:
    if state.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return False
    return int(state["pid"]) != os.getpid()


def unfinished_search(client, name: str, storage: str) -> Resume | None:
    """The latest search of that name when it ended before its budget (None otherwise)."""
    runs = _searches(client, name)
    if not runs or runs[0].info.status not in ENDED_UNFINISHED:
        return None
    try:
        return load_resume(client, runs[0], storage)
    except ConfigError:
        return None  # started by an older version, or never got going: nothing to resume


def check_not_running(resume: Resume, name: str) -> None:
    """Refuse to resume a search whose driver is still alive."""
    if resume.status == "RUNNING" and _driver_alive(resume.state):
        raise ConfigError(
            f"search {name!r} (run {resume.run_id}) is running now in process "
            f"{resume.state['pid']}: stop it first, or search under another --name"
        )


def merged_config(resume: Resume, overrides: dict[str, Any]) -> SearchConfig:
    """The saved config with `overrides` (flags given to the resume); refuses changes to what
    is searched, except a larger budget."""
    saved = dict(resume.config)
    changed = []
    for key, value in overrides.items():
        if key in MAY_CHANGE or saved.get(key) == value:
            continue
        if key == "budget" and isinstance(value, int) and value >= saved["budget"]:
            continue
        changed.append(f"{key} ({saved.get(key)!r} -> {value!r})")
    confirmation = resume.state["searcher"]["chain"].get("Confirmation") or {}
    if overrides.get("budget", saved["budget"]) > saved["budget"] and (
        confirmation.get("queue") is not None
    ):
        raise ConfigError(
            f"cannot resume search {saved['name']!r} with a larger budget: its confirmation "
            "runs have started (start a new search under another --name instead)"
        )
    if changed:
        raise ConfigError(
            f"cannot resume search {saved['name']!r} with changed settings: "
            f"{', '.join(changed)}; only a larger budget and {', '.join(sorted(MAY_CHANGE))} may "
            "change (start a new search under another --name instead)"
        )
    return SearchConfig.build({**saved, **overrides}, where=f"resumed search {saved['name']!r}")


def mark_cut_off(
    client, experiment_id: str, parent_run_id: str, ended: Mapping[str, str] | None = None
) -> list[str]:
    """End the child runs of the search left ``RUNNING`` by an interruption (at its end, or
    found by a resume after a kill). A run whose child `ended` names (trial id -> ``finished``,
    ``stopped``, ``failed`` or ``retried``, from the saved state) was cut off between the state's
    write and the run's end: it ends as recorded. Any other is marked ``KILLED`` and tagged, since a
    resume trains its child again. Returns the killed runs' ids."""
    ended = ended or {}
    runs = client.search_runs(
        [experiment_id],
        filter_string=tag_filter(PARENT_RUN_TAG, parent_run_id)
        + " and attributes.status = 'RUNNING'",
        max_results=10000,
    )
    killed = []
    for run in runs:
        status = ended.get(run.data.tags.get(TRIAL_ID_TAG, ""))
        if status is not None:
            ok = status in ("finished", "stopped")
            client.set_terminated(run.info.run_id, "FINISHED" if ok else "FAILED")
            continue
        client.log_batch(
            run.info.run_id,
            tags=[
                RunTag(STATUS_TAG, "killed"),
                RunTag(KILLED_TAG, "cut off by an interruption; a resume trains it again"),
            ],
        )
        client.set_terminated(run.info.run_id, "KILLED")
        killed.append(run.info.run_id)
    return killed
