"""`rlnas search` and `rlnas resume` as a user runs them: a search from a config file, and a
Ctrl-C'd search resumed (end to end, through real Ray and MLflow; apart from test_cli.py so the
two workers share the slow files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.search.test_cli import rlnas


@pytest.mark.slow
def test_search_from_config_file_prints_leaderboard_and_where_results_are(tmp_path):
    config = tmp_path / "search.yaml"
    config.write_text("space: mlp\nbudget: 4\nepochs: 2\nconcurrency: 2\ncontroller: random\n")
    result = rlnas("search", "--config", str(config), "--name", "cli-mlp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "rank  child" in out and "child-00" in out
    assert "[4/4] done 4" in out
    assert "registered as model 'cli-mlp'" in out
    assert "Downloading artifacts" not in out + result.stderr  # no library progress bars
    assert f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}" in out
    board = rlnas("leaderboard", "cli-mlp", "--top", "2", cwd=tmp_path)
    assert board.returncode == 0
    assert len([line for line in board.stdout.splitlines() if "child-" in line]) == 2


@pytest.mark.slow
def test_ctrl_c_keeps_finished_children_and_a_resume_registers_the_best(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("MLFLOW_TRACKING_URI", None)
    search = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search.cli",
            "search",
            "--space",
            "mlp",
            "--budget",
            "5",
            "--epochs",
            "2",
            "--concurrency",
            "1",
            "--name",
            "interrupted",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        for line in search.stdout:  # wait for the first finished child
            if line.startswith("child"):
                break
        search.send_signal(signal.SIGINT)
        out, err = search.communicate(timeout=120)
    finally:
        search.kill()
    assert search.returncode == 130, err[-2000:]
    assert "interrupted after" in err and "the finished ones are kept" in err
    assert "`rlnas resume interrupted` continues the search" in err
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("interrupted")
    runs = client.search_runs([experiment.experiment_id], "")
    parent = [r for r in runs if r.data.tags.get("rlnas.role") == "search"]
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert [p.info.status for p in parent] == ["KILLED"]
    assert finished and all("reward" in r.data.metrics for r in finished)
    assert all(r.info.status in ("FINISHED", "KILLED") for r in runs)  # none left RUNNING
    pictures = {"rewards.png", "controller.png", "pareto.png", "learning_curves.png"}
    drawn = {a.path for a in client.list_artifacts(parent[0].info.run_id)}
    assert "rewards.png" in drawn  # drawn on the way out too

    resumed = rlnas("resume", "interrupted", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout and "[5/5] done 5" in resumed.stdout
    runs = client.search_runs([experiment.experiment_id], "")
    [parent] = [r for r in runs if r.data.tags.get("rlnas.role") == "search"]
    children = [r for r in runs if r.data.tags.get("rlnas.role") == "child"]
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert parent.info.status == "FINISHED" and len(finished) == 5
    assert pictures <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert sorted(r.info.run_name for r in finished) == [f"child-00{i}" for i in range(1, 6)]
    version = client.get_model_version_by_alias("interrupted", "best")
    assert version.run_id == parent.data.tags["rlnas.best_run_id"]
    best = client.get_run(version.run_id).data.metrics["reward"]
    assert best == max(r.data.metrics["reward"] for r in finished)
