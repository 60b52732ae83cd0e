"""The `rlnas` command line as a user runs it: clear one-line errors, listings, a real search."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient


def rlnas(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "search.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["search", "--budget", "many"], ["--budget", "invalid int value"]),
        (["search", "--budget", "0"], ["budget", "expected an integer >= 1"]),
        (["search", "--gpus-per-trial", "-1"], ["gpus_per_trial"]),
        (["search", "--colour", "red"], ["unrecognized arguments: --colour"]),
        (["search", "--space", "nosuch"], ["nosuch", "built-in"]),
        (["search", "--task", "nosuch"], ["unknown task 'nosuch'"]),
        (["search", "--controller", "nosuch"], ["unknown controller 'nosuch'"]),
        (["search", "--confirm", "-1"], ["confirm", "expected an integer >= 0"]),
        (["search", "--keep", "all"], ["--keep", "invalid choice: 'all'"]),
        (["search", "--augment", "flip"], ["augment", "unknown augmentation 'flip'"]),
        (["search", "--augment", "shift"], ["augment", "sequence classification", "'digits'"]),
        (
            ["search", "--space", "gan", "--lr-schedule", "cosine"],
            ["lr_schedule", "gan family's trainer keeps its learning rate constant"],
        ),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
        (["spaces", "show"], ["name a built-in space or a YAML file"]),
        (["search", "--gpus-per-trial", "0.5"], ["0.5 GPUs per child asked", "cluster has 0"]),
        (["leaderboard", "never-ran"], ["no searches recorded", "run `rlnas search` first"]),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(tmp_path, args, needles):
    assert_one_line_error(rlnas(*args, cwd=tmp_path), *needles)
    assert not (tmp_path / "runs").exists()  # nothing recorded


def test_bad_space_file_gives_one_line_naming_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("family: mlp\ndecisions:\n  - name: width\n    choices: 64\n")
    assert_one_line_error(
        rlnas("spaces", "validate", str(bad), cwd=tmp_path),
        str(bad),
        "decisions[0].choices",
        "expected a non-empty list",
    )
    assert_one_line_error(
        rlnas("search", "--space", str(bad), cwd=tmp_path), str(bad), "decisions[0].choices"
    )


def test_bad_config_file_gives_one_line(tmp_path):
    config = tmp_path / "search.yaml"
    for text, needles in [
        ("budget: 4\nepochz: 3\n", ("epochz", "unknown setting")),
        ("budget: four\n", ("budget", "expected an integer")),
        ("keep: everything\n", ("keep", "confirmed, best")),
        ("lr_schedule: warmup\n", ("lr_schedule", "constant, cosine")),
    ]:
        config.write_text(text)
        assert_one_line_error(rlnas("search", "--config", str(config), cwd=tmp_path), *needles)


def test_spaces_listing_show_and_validate(tmp_path):
    listing = rlnas("spaces", cwd=tmp_path)
    assert listing.returncode == 0
    for name in ("cnn", "mlp", "rnn-evolved"):
        assert name in listing.stdout
    shown = rlnas("spaces", "show", "rnn-evolved", cwd=tmp_path)
    assert "3,355,440 architectures" in shown.stdout
    good = tmp_path / "good.yaml"
    good.write_text("family: mlp\ndecisions:\n  - {name: width, choices: [8, 16]}\n")
    checked = rlnas("spaces", "validate", str(good), cwd=tmp_path)
    assert checked.returncode == 0 and "valid space" in checked.stdout


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

    resumed = rlnas("resume", "interrupted", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout and "[5/5] done 5" in resumed.stdout
    runs = client.search_runs([experiment.experiment_id], "")
    [parent] = [r for r in runs if r.data.tags.get("rlnas.role") == "search"]
    children = [r for r in runs if r.data.tags.get("rlnas.role") == "child"]
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert parent.info.status == "FINISHED" and len(finished) == 5
    assert sorted(r.info.run_name for r in finished) == [f"child-00{i}" for i in range(1, 6)]
    version = client.get_model_version_by_alias("interrupted", "best")
    assert version.run_id == parent.data.tags["rlnas.best_run_id"]
    best = client.get_run(version.run_id).data.metrics["reward"]
    assert best == max(r.data.metrics["reward"] for r in finished)
