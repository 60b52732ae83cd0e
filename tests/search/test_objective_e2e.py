"""Searching with a custom objective through real Ray and MLflow: the CLI's module:function,
a Python callable, reward expressions, and duplicates answered from cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search import SearchConfig, run_search

pytestmark = pytest.mark.slow

SPACE = """\
family: custom
decisions:
  - {name: width, choices: [8, 16, 32]}
"""


def test_cli_objective_with_reward_expression(tmp_path):
    (tmp_path / "toyobj.py").write_text(
        "def score(architecture):\n"
        "    width = architecture['width']\n"
        "    return {'val_accuracy': width / 40, 'params': width * 1000}\n"
    )
    (tmp_path / "toy.yaml").write_text(SPACE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "search.cli",
            "search",
            "--objective",
            "toyobj:score",
            "--space",
            "toy.yaml",
            "--reward",
            "val_accuracy * (params / 1e5) ** -0.07",
            "--controller",
            "random",
            "--budget",
            "5",
            "--concurrency",
            "1",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on objective toyobj:score" in result.stdout
    assert "registered as model" not in result.stdout  # no model to register
    # three architectures in all: trained once each, the search ends short of its budget of 5
    assert "ended before its budget of 5: every one of the space's 3 architectures has been " in (
        result.stdout
    )
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("score-toy")
    children = client.search_runs([experiment.experiment_id], "tags.`rlnas.role` = 'child'")
    assert len(children) == 3  # every architecture once, none trained again
    for child in children:
        width = int(child.data.params["width"])
        expected = width / 40 * (width * 1000 / 1e5) ** -0.07
        assert child.data.metrics["reward"] == pytest.approx(expected)
        assert child.data.metrics["val_accuracy"] == pytest.approx(width / 40)


def test_callable_objective_reuses_known_architectures(tmp_path):
    calls = tmp_path / "calls.txt"

    def objective(architecture):
        with open(calls, "a") as f:  # runs in a Ray worker: count trainings through a file
            f.write(f"{architecture['width']}\n")
        return architecture["width"] / 32

    space = tmp_path / "toy.yaml"
    space.write_text(SPACE)
    config = SearchConfig(
        space=str(space),
        objective=objective,
        controller="random",
        budget=3,
        concurrency=1,
        seed=1,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        storage=str(tmp_path / "ray"),
        quiet=True,
    )
    result = run_search(config)
    assert sorted(calls.read_text().split()) == ["16", "32", "8"]
    assert result.best_reward == 1.0 and result.model_version is None
    client = MlflowClient(config.tracking_uri)
    runs = client.search_runs([result.experiment_id], "")
    children = {r.info.run_id: r for r in runs if r.data.tags.get("rlnas.role") == "child"}
    reused = [r for r in runs if r.data.tags.get("rlnas.role") == "reused"]
    assert len(children) == 3 and result.reused == len(reused) > 0
    for run in reused:
        original = children[run.data.tags["rlnas.reused_from"]]
        assert run.data.params["width"] == original.data.params["width"]
        assert run.data.metrics["reward"] == original.data.metrics["reward"]
