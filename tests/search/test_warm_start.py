"""`--warm-start NAME`: a search's controller starts from the final state of an earlier search.

The refusals run through the CLI's `main` against a real MLflow store (on SQLite) holding searches
recorded as a search records them (`Tracker`), and end before Ray starts; the end-to-end test
runs real searches through Ray with a toy objective."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from controller import make_controller
from search.config import ConfigError, SearchConfig
from search.tracking import Tracker
from search.warm import CONTROLLER_FILE
from spaces import Space
from tests.search.test_cli import assert_one_line_error, rlnas, rlnas_in_process
from tests.search.toy_search import SPACE, setup_dir

SEARCH = ("search", "--objective", "toyobj:quality", "--space", "space.yaml")


def uri(cwd: Path) -> str:
    return f"sqlite:///{(cwd / 'runs' / 'mlflow.db').resolve()}"


def record_search(
    cwd: Path, name: str, controller: str | None = "evolution", space: str = SPACE
) -> str:
    """A search's parent run as `run_search` leaves it: config, space.yaml and, unless
    `controller` is None (a search that never ended), the controller's final state."""
    tracker = Tracker(uri(cwd), name)
    run_id = tracker.start_parent({"space": "space.yaml"}, space, run_name="search-x")
    if controller is not None:
        trained = make_controller(controller, Space.from_dict(yaml.safe_load(space)))
        for _ in range(3):
            candidate = trained.ask()
            trained.tell(candidate, 0.5)
        tracker.log_parent_artifacts(
            {CONTROLLER_FILE: lambda path: torch.save(trained.state_dict(), path)}
        )
    tracker.end_parent("FINISHED")
    tracker.close()
    return run_id


def parents(client: MlflowClient, name: str) -> list:
    """The parent runs of the searches named `name`."""
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    return [r for r in runs if r.data.tags.get("rlnas.role") == "search"]


def test_the_setting_is_a_search_name():
    assert SearchConfig(warm_start="digits-cnn").warm_start == "digits-cnn"
    with pytest.raises(ConfigError, match="warm_start: got ' ', expected the name of a search"):
        SearchConfig(warm_start=" ")


@pytest.mark.parametrize(
    ("recorded", "args", "needles"),
    [
        ({}, ("--warm-start", "a"), ["warm_start: no search named 'a': nothing is recorded"]),
        (
            {"b": "evolution"},
            ("--warm-start", "a"),
            ["warm_start: no search named 'a' in sqlite:///", "expected the name of a search"],
        ),
        (
            {"a": None},
            ("--warm-start", "a"),
            ["warm_start: search 'a' (run", "has no controller.pt: it never ended"],
        ),
        (
            {"a": "tpe"},
            ("--warm-start", "a", "--controller", "evolution"),
            ["used controller 'tpe'", "expected one by this search's controller 'evolution'"],
        ),
        (
            {"a": "evolution"},
            ("--warm-start", "a", "--controller", "evolution", "--space", "mlp"),
            ["cannot start from it", "shares no decision with space 'mlp'"],
        ),
    ],
)
def test_refusals_give_one_line_and_exit_2_before_ray_starts(
    tmp_path, recorded, args, needles, monkeypatch, capsys
):
    cwd = setup_dir(tmp_path)
    for name, controller in recorded.items():
        record_search(cwd, name, controller)
    result = rlnas_in_process([*SEARCH, "--name", "new", *args], cwd, monkeypatch, capsys)
    assert_one_line_error(result, *needles)
    assert not (cwd / "runs" / "ray").exists()  # Ray never ran
    if recorded:
        assert MlflowClient(uri(cwd)).get_experiment_by_name("new") is None


@pytest.mark.slow
def test_a_warm_started_search_records_it_and_a_resume_does_not_start_again(tmp_path):
    cwd = setup_dir(tmp_path)
    evolution = ("--controller", "evolution", "--concurrency", "1")
    source = record_search(cwd, "a")  # as a search of 3 children leaves it
    client = MlflowClient(uri(cwd))

    warm = rlnas(*SEARCH, *evolution, "--budget", "2", "--name", "b", "--warm-start", "a", cwd=cwd)
    assert warm.returncode == 0, warm.stderr[-2000:]
    header = warm.stdout.splitlines()[0]
    assert header.endswith(
        f"warm-started from 'a' (run {source[:8]}: its population of 3; all 2 decisions shared)"
    ), header
    experiment = client.get_experiment_by_name("b").experiment_id
    [parent] = [
        r for r in client.search_runs([experiment]) if r.data.tags.get("rlnas.role") == "search"
    ]
    assert parent.data.params["warm_start"] == "a"
    assert parent.data.tags["rlnas.warm_start"] == source
    assert parent.data.tags["rlnas.warm_start_carried"].startswith("its population of 3")

    # the latest search named 'a' is now one by another controller: starting from it again
    # would be refused, and the resume goes on from its own state instead
    record_search(cwd, "a", "tpe")
    resumed = rlnas("resume", "b", "--budget", "3", cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    header = resumed.stdout.splitlines()[0]
    assert "resuming" in header and header.endswith("warm-started from 'a' when it began")
    assert "[3/3] done 3" in resumed.stdout
