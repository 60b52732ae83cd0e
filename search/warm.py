"""`warm_start`: a new search's controller begins from the final state of an earlier search.

A search's parent run keeps its controller's final state (`CONTROLLER_FILE`, written when the
search ends) and its space (``space.yaml``). `load_warm_start` finds the latest search of the
given name in the same tracking store, reads both and hands them to the new controller's
`Controller.warm_start`, which carries the learned part over through the decisions the two
spaces share. Every way this can fail is a `ConfigError` of one line, raised before Ray starts.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from mlflow.exceptions import MlflowException

from search.config import ConfigError, SearchConfig
from search.mlflow_client import quiet_downloads
from search.results import ResultsError, open_store
from search.resume import find_search
from search.tags import SPACE_TAG, WARM_START_CARRIED_TAG, WARM_START_TAG

__all__ = ["CONTROLLER_FILE", "WarmStart", "load_warm_start"]

CONTROLLER_FILE = "controller.pt"
"""The parent run's artifact holding its controller's `state_dict()` once the search ended."""


@dataclass(frozen=True)
class WarmStart:
    """Where a search's controller started from, and what it carried."""

    name: str
    run_id: str
    carried: str

    @property
    def text(self) -> str:
        """For the search's first line: ``warm-started from 'NAME' (run 1a2b3c4d: ...)``."""
        return f"warm-started from {self.name!r} (run {self.run_id[:8]}: {self.carried})"

    @property
    def tags(self) -> dict[str, str]:
        """The parent run's tags that record it."""
        return {WARM_START_TAG: self.run_id, WARM_START_CARRIED_TAG: self.carried[:5000]}


def load_warm_start(config: SearchConfig, controller) -> WarmStart:
    """Start `controller` from the final state of the latest search named
    ``config.warm_start`` in ``config``'s tracking store.

    Raises:
        ConfigError: No such search, one without a saved controller, another controller, or
            spaces that share no decision (one line: what, where, what was expected).
    """
    name = str(config.warm_start)
    quiet_downloads()
    uri = config.resolved_tracking_uri
    expected = "expected the name of a search that ran in this tracking store"
    try:
        _, client = open_store(uri)
    except ResultsError:
        raise ConfigError(
            f"warm_start: no search named {name!r}: nothing is recorded at {uri}; {expected}"
        ) from None
    try:
        run = find_search(client, name)
    except ConfigError:
        raise ConfigError(f"warm_start: no search named {name!r} in {uri}; {expected}") from None
    run_id = run.info.run_id
    where = f"warm_start: search {name!r} (run {run_id} in {uri})"
    with tempfile.TemporaryDirectory() as tmp:
        state = _state(client, run_id, tmp, where)
        space = _space(client, run, tmp, where)
    if not isinstance(state, dict) or "controller" not in state:
        raise ConfigError(f"{where}: its {CONTROLLER_FILE} is not a controller's state")
    if state["controller"] != controller.name:
        raise ConfigError(
            f"{where} used controller {state['controller']!r}; expected one by this search's "
            f"controller {controller.name!r}"
        )
    try:
        carried = controller.warm_start(state, space)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{where}: cannot start from it: {exc}") from None
    return WarmStart(name, run_id, carried)


def _state(client, run_id: str, into: str, where: str) -> Any:
    """The run's controller state."""
    try:
        path = client.download_artifacts(run_id, CONTROLLER_FILE, into)
    except (MlflowException, OSError):
        raise ConfigError(
            f"{where} has no {CONTROLLER_FILE}: it never ended (a search saves its "
            "controller's final state when it ends); expected a search that finished or was "
            "stopped"
        ) from None
    try:
        return torch.load(path, weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{where}: cannot read its {CONTROLLER_FILE}: {exc}") from None


def _space(client, run, into: str, where: str):
    """The space the run searched, from its ``space.yaml``."""
    from spaces import Space, SpaceError

    name = Path(str(run.data.tags.get(SPACE_TAG, "space"))).stem
    try:
        path = client.download_artifacts(run.info.run_id, "space.yaml", into)
        data = yaml.safe_load(Path(path).read_text())
        return Space.from_dict(
            data, source=f"space.yaml of run {run.info.run_id}", default_name=name
        )
    except (MlflowException, OSError, yaml.YAMLError, SpaceError) as exc:
        raise ConfigError(f"{where}: cannot read its space.yaml: {exc}") from None
