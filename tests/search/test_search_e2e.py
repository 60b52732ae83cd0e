"""A real search through real Ray and real MLflow (SQLite), then reading it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient

from search import SearchConfig, leaderboard, load_best, run_search
from trainers import load_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = SearchConfig(
        task="digits",
        space="mlp",
        controller="reinforce",
        budget=5,
        epochs=4,
        scheduler="fifo",  # every child trained in full: its 4 epochs and its model
        concurrency=2,
        seed=3,
        name="e2e-mlp",
        tracking_uri=uri,
        storage=str(root / "ray"),
        quiet=True,
    )
    return config, run_search(config), root


def test_parent_and_child_runs_exist_with_rewards(finished_search):
    config, result, _ = finished_search
    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name("e2e-mlp")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["budget"] == "5"
    assert "best_reward" in parent.data.metrics
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    assert len(children) == 5
    for child in children:
        assert child.info.status == "FINISHED"
        assert 0.0 <= child.data.metrics["reward"] <= 1.0
        assert child.data.metrics["params"] > 0
        assert "layers" in child.data.params
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [m.step for m in history] == [1, 2, 3, 4]
        names = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"architecture.json", "model"} <= names
    parent_files = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"leaderboard.csv", "controller.pt", "space.yaml", "rewards.png"} <= parent_files
    assert {"controller.png", "pareto.png", "learning_curves.png"} <= parent_files


def test_best_alias_points_at_the_best_child(finished_search):
    config, result, _ = finished_search
    client = MlflowClient(config.tracking_uri)
    version = client.get_model_version_by_alias("e2e-mlp", "best")
    assert version.run_id == result.best_run_id
    rewards = [
        r.data.metrics["reward"]
        for r in client.search_runs(
            [result.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
        )
    ]
    assert result.best_reward == max(rewards)
    board = leaderboard("e2e-mlp", tracking_uri=config.tracking_uri)
    assert board.iloc[0]["run_id"] == result.best_run_id
    assert list(board["reward"]) == sorted(board["reward"], reverse=True)


def test_load_best_predicts_on_the_test_split_in_a_fresh_process(finished_search):
    config, result, root = finished_search
    code = (
        "import json, torch\n"
        "from search import load_best\n"
        "from trainers import load_task\n"
        f"model = load_best('e2e-mlp', tracking_uri={config.tracking_uri!r})\n"
        "task = load_task('digits', seed=3)\n"
        "with torch.no_grad():\n"
        "    acc = (model(task.x_test).argmax(1) == task.y_test).float().mean().item()\n"
        "print(json.dumps({'accuracy': acc, 'training': model.training}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["training"] is False
    assert report["accuracy"] == pytest.approx(result.best["test_accuracy"], abs=1e-6)
    assert report["accuracy"] > 0.5  # ten classes: far above chance after 4 epochs


def test_load_best_in_process_matches(finished_search):
    config, _, _ = finished_search
    model = load_best("e2e-mlp", tracking_uri=config.tracking_uri)
    task = load_task("digits", seed=3)
    with torch.no_grad():
        assert model(task.x_test[:7]).shape == (7, 10)


def test_mlflow_loads_the_registered_model_as_load_best_in_a_fresh_process(finished_search):
    config, result, root = finished_search
    code = (
        "import json, mlflow, torch\n"
        "from trainers import load_task\n"
        "model = mlflow.pyfunc.load_model('models:/e2e-mlp@best')\n"
        "x = load_task('digits', seed=3).x_test.numpy()\n"
        "print(json.dumps(model.predict({'x': x}).tolist()))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": config.tracking_uri}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env
    )
    predicted = torch.tensor(json.loads(out.stdout.strip().splitlines()[-1]))
    with torch.no_grad():
        expected = load_best("e2e-mlp", config.tracking_uri)(load_task("digits", seed=3).x_test)
    assert torch.allclose(predicted, expected.softmax(-1), atol=1e-6)
    version = MlflowClient(config.tracking_uri).get_model_version_by_alias("e2e-mlp", "best")
    assert version.run_id == result.best_run_id and not version.source.endswith("/model")
