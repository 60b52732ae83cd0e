"""Finding a finished search from the command line: `rlnas list`, `show`, `leaderboard --csv`."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from search import SearchConfig, run_search
from search.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A search of three small children in ``runs/`` of a folder, as `rlnas search` leaves it."""
    root = tmp_path_factory.mktemp("browse")
    config = SearchConfig(
        task="digits",
        space="mlp",
        controller="random",
        budget=3,
        epochs=2,
        concurrency=1,
        seed=1,
        name="browse-mlp",
        tracking_uri=f"sqlite:///{root / 'runs' / 'mlflow.db'}",
        storage=str(root / "runs" / "ray"),
        quiet=True,
    )
    return run_search(config)


def rlnas(capsys, result, *args: str) -> tuple[int, str, str]:
    """`rlnas ARGS --tracking-uri` of the search, in this process: status, stdout, stderr."""
    capsys.readouterr()
    status = main([*args, "--tracking-uri", result.tracking_uri])
    out, err = capsys.readouterr()
    return status, out, err


def test_list_names_each_search_with_its_children_and_best_reward(finished, capsys):
    status, out, err = rlnas(capsys, finished, "list")
    assert status == 0, err
    header, line = out.splitlines()
    assert header.split()[:4] == ["name", "status", "children", "failed"]
    assert line.split()[:4] == ["browse-mlp", "FINISHED", "3/3", "0"]
    assert f"{finished.best_reward:.4f}" in line and finished.parent_run_id in line


def test_show_gives_settings_best_child_and_where_the_model_is(finished, capsys):
    result = finished
    status, text, err = rlnas(capsys, finished, "show", "browse-mlp")
    assert status == 0, err
    assert "settings: task digits, space mlp, controller random, budget 3" in text
    assert f"best: child-{result.leaderboard.iloc[0]['child']:03d}" in text
    assert f"(run {result.best_run_id})" in text and "architecture: layers=" in text
    assert f"reward {result.best_reward:.4g}" in text
    assert "models:/browse-mlp/1 (alias best is this one" in text
    assert f"/{result.best_run_id}/artifacts/model" in text


def test_show_child_by_number_or_run_name(finished, capsys):
    row = finished.leaderboard.iloc[-1]
    for child in (str(row["child"]), f"child-{row['child']:03d}"):
        status, out, err = rlnas(capsys, finished, "show", "browse-mlp", child)
        assert status == 0, err
        assert out.startswith(f"child-{row['child']:03d} of search browse-mlp: finished")
        assert f"(run {row['run_id']})" in out and "val_accuracy" in out


def test_leaderboard_csv_has_every_column(finished, capsys):
    status, out, err = rlnas(capsys, finished, "leaderboard", "browse-mlp", "--csv")
    assert status == 0, err
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame["child"]) == list(finished.leaderboard["child"])
    assert {"reward", "test", "params", "run_id", "architecture"} <= set(frame.columns)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["show", "nosuch"], ["rlnas show: no search named 'nosuch'", "known: browse-mlp"]),
        (["show", "browse-mlp", "99"], ["has no child-099", "rlnas leaderboard browse-mlp"]),
        (["show", "browse-mlp", "best"], ["'best' is not a child"]),
        (["leaderboard", "nosuch", "--csv"], ["no search named 'nosuch'"]),
    ],
)
def test_unknown_search_or_child_is_one_line_and_exit_2(finished, args, needles, capsys):
    status, out, err = rlnas(capsys, finished, *args)
    assert status == 2 and not out
    (line,) = err.splitlines()
    assert all(needle in line for needle in needles), line


def test_list_without_a_store_says_so(tmp_path, capsys):
    assert main(["list", "--tracking-uri", f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"]) == 0
    assert "no searches recorded" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()
