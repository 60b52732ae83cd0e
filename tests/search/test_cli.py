"""The `rlnas` command line: clear one-line errors and listings, through its `main` in this
process and, for one error and for a refusal found once Ray is up, as the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


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


def rlnas_in_process(args, cwd: Path, monkeypatch, capsys) -> subprocess.CompletedProcess:
    """`rlnas ARGS` in `cwd` through the console script's `main`, in this process (no new
    interpreter: the same parsing, checks and messages, seconds sooner)."""
    from search.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """`rlnas ARGS` in `tmp_path`, through `main` in this process."""
    return lambda args: rlnas_in_process(args, tmp_path, monkeypatch, capsys)


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
        (["leaderboard", "never-ran"], ["no searches recorded", "run `rlnas search` first"]),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(tmp_path, args, needles, run):
    assert_one_line_error(run(args), *needles)
    assert not (tmp_path / "runs").exists()  # nothing recorded


def test_a_bad_flag_at_the_console_gives_one_line_and_exit_2(tmp_path):
    """The console script itself (the cases above call its `main` in this process)."""
    assert_one_line_error(rlnas("search", "--budget", "0", cwd=tmp_path), "budget", ">= 1")
    assert not (tmp_path / "runs").exists()


def test_more_gpus_than_the_cluster_has_gives_one_line_and_records_no_search(tmp_path):
    """Found once Ray is up (Ray counts the GPUs): a new store may exist by then (its schema is
    made while Ray starts), but it holds no search."""
    result = rlnas("search", "--gpus-per-trial", "0.5", cwd=tmp_path)
    assert_one_line_error(result, "0.5 GPUs per child asked", "cluster has 0")
    store = tmp_path / "runs" / "mlflow.db"
    if store.exists():
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{store}")
        assert [e.name for e in client.search_experiments()] == ["Default"]
        assert not client.search_runs(["0"])


def test_bad_space_file_gives_one_line_naming_file_and_key(tmp_path, run):
    bad = tmp_path / "bad.yaml"
    bad.write_text("family: mlp\ndecisions:\n  - name: width\n    choices: 64\n")
    assert_one_line_error(
        run(["spaces", "validate", str(bad)]),
        str(bad),
        "decisions[0].choices",
        "expected a non-empty list",
    )
    assert_one_line_error(run(["search", "--space", str(bad)]), str(bad), "decisions[0].choices")


def test_a_space_the_family_cannot_build_is_refused_before_the_search(tmp_path, run):
    """Decisions that are not the family's pass the space's own checks; the search refuses the
    space up front instead of proposing 1000 unbuildable architectures in a row."""
    space = tmp_path / "flat.yaml"
    space.write_text("family: mlp\ndecisions:\n  - {name: hidden, choices: [16, 32]}\n")
    assert_one_line_error(
        run(["search", "--space", str(space)]),
        "none of 500 architectures drawn at random",
        "family 'mlp'",
        "unknown key(s) hidden",
    )
    assert not (tmp_path / "runs").exists()  # nothing recorded


def test_bad_config_file_gives_one_line(tmp_path, run):
    config = tmp_path / "search.yaml"
    for text, needles in [
        ("budget: 4\nepochz: 3\n", ("epochz", "unknown setting")),
        ("budget: four\n", ("budget", "expected an integer")),
        ("keep: everything\n", ("keep", "confirmed, best")),
        ("lr_schedule: warmup\n", ("lr_schedule", "constant, cosine")),
    ]:
        config.write_text(text)
        assert_one_line_error(run(["search", "--config", str(config)]), *needles)


def test_spaces_listing_show_and_validate(tmp_path, run):
    listing = run(["spaces"])
    assert listing.returncode == 0
    for name in ("cnn", "mlp", "rnn-evolved"):
        assert name in listing.stdout
    shown = run(["spaces", "show", "rnn-evolved"])
    assert "3,355,440 architectures" in shown.stdout
    good = tmp_path / "good.yaml"
    good.write_text(
        "family: mlp\ndecisions:\n  - repeat: layers\n    count: [1, 2]\n"
        "    decisions:\n      - {name: width, choices: [8, 16]}\n"
    )
    checked = run(["spaces", "validate", str(good)])
    assert checked.returncode == 0 and "valid space 'good'" in checked.stdout
    assert "not built for a task" in checked.stdout
    built = run(["spaces", "validate", str(good), "--task", "digits"])
    assert built.returncode == 0
    assert "200 of 200 random draws can be built for digits" in built.stdout
    assert_one_line_error(run(["spaces", "show", "mlp", "--task", "digits"]), "option of validate")


def test_validate_with_a_task_refuses_a_space_its_family_cannot_build(tmp_path, run):
    """The space's own checks pass decisions that are not the family's; `--task` builds some
    and says why none can be."""
    flat = tmp_path / "flat.yaml"
    flat.write_text("family: mlp\ndecisions:\n  - {name: hidden, choices: [16, 32]}\n")
    assert run(["spaces", "validate", str(flat)]).returncode == 0
    assert_one_line_error(
        run(["spaces", "validate", str(flat), "--task", "digits"]),
        str(flat),
        "none of 200 random draws",
        "family 'mlp'",
        "unknown key(s) hidden",
    )
