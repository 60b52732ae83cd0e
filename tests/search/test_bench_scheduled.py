"""Early stopping simulated on a table's learning curves (`rlnas bench --scheduler`)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from search.bench import add_bench_arguments, load_table, run_bench_command
from search.bench.scheduled import bench_scheduled, run_scheduled


@pytest.fixture(scope="module")
def cnn_table():
    return load_table("digits-cnn")


def test_asha_proposes_more_children_in_the_same_epochs(cnn_table):
    epochs = cnn_table.curves.shape[2]
    summaries, budget = bench_scheduled(cnn_table, ["random"], ["fifo", "asha"], 3, 30)
    fifo, asha = summaries
    assert budget == 30 * epochs
    assert (fifo.children == 30).all() and (fifo.full_share == 1.0).all()
    assert (asha.children > fifo.children).all() and (asha.full_share < 1.0).all()
    for s in summaries:  # regret never negative, never above the table's range
        span = float(cnn_table.score.max() - cnn_table.score.min())
        assert ((s.regret >= 0) & (s.regret <= span)).all()


def test_a_child_stops_only_at_a_rung_and_the_run_is_reproducible(cnn_table):
    epochs = cnn_table.curves.shape[2]
    run = run_scheduled(cnn_table, "evolution", 4, "asha", 40 * epochs, grace_epochs=2)
    spent = np.diff(np.concatenate([[0], run.epochs]))
    assert set(spent[run.full]) == {epochs}
    assert set(spent[~run.full]) == {2}  # grace 2, factor 3: the only rung before epoch 5
    assert run.epochs[-1] >= 40 * epochs and run.epochs[-2] < 40 * epochs
    again = run_scheduled(cnn_table, "evolution", 4, "asha", 40 * epochs, grace_epochs=2)
    assert np.array_equal(run.rows, again.rows) and np.allclose(run.told, again.told)


def _bench(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return run_bench_command(parser.parse_args(list(argv)))


def test_command_prints_every_controller_under_every_scheduler(capsys):
    status = _bench(
        "digits-cnn",
        "--controllers",
        "random",
        "--scheduler",
        "fifo,hyperband",
        "--seeds",
        "2",
        "--budget",
        "10",
        "--no-tracking",
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "random     fifo" in out and "random     hyperband" in out
    assert (
        "reproduce: rlnas bench digits-cnn --controllers random --scheduler fifo,hyperband" in out
    )


def test_command_refusals(capsys):
    assert _bench("digits-mlp", "--controllers", "random", "--scheduler", "asha") == 2
    assert "no learning curves" in capsys.readouterr().err
    assert _bench("digits-cnn", "--scheduler", "median") == 2
    assert "expected some of fifo, asha, hyperband" in capsys.readouterr().err
    assert (
        _bench(
            "digits-cnn", "--controllers", "random", "--scheduler", "asha", "--grace-epochs", "9"
        )
        == 2
    )
    assert "--grace-epochs 9" in capsys.readouterr().err
