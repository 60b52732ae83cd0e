"""The live progress lines and the search log behind them."""

from __future__ import annotations

import io
from types import SimpleNamespace

from search.formatting import architecture_summary, format_leaderboard
from search.progress import ProgressCallback, format_seconds
from search.records import SearchLog, flatten_architecture

ARCH = {"cell": "gru", "layers": [{"units": 40, "activation": "tanh"}, {"units": 0}]}


def finish(log, callback, trial_id, reward, params):
    record = log.children[trial_id]
    record.status, record.reward = "finished", reward
    record.metrics = {"reward": reward, "params": params, "test_accuracy": reward - 0.01}
    callback.on_trial_complete(0, [], SimpleNamespace(trial_id=trial_id))


def test_progress_lines_count_children_and_track_the_best():
    log = SearchLog(budget=5)
    out = io.StringIO()
    callback = ProgressCallback(log, out)
    for i in range(4):
        log.add(f"t{i}", i, ARCH)
    finish(log, callback, "t0", 0.90, 500)
    log.children["t1"].status = "failed"
    log.children["t1"].error = "RuntimeError: out of memory"
    callback.on_trial_error(0, [], SimpleNamespace(trial_id="t1"))
    finish(log, callback, "t2", 0.95, 900)
    finish(log, callback, "t3", 0.95, 300)  # same reward, smaller: the new best
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("child   1 reward 0.9000   [1/5] done 1, running 3, failed 0")
    assert "child   2 FAILED: RuntimeError: out of memory" in lines[1]
    assert "[2/5] done 1, running 2, failed 1" in lines[1]
    assert "best 0.9500 (child 3)" in lines[2]
    assert "[4/5] done 3, running 0, failed 1" in lines[3]
    assert "best 0.9500 (child 4)" in lines[3] and "left" in lines[3]
    assert log.best.number == 4
    board = log.leaderboard()
    assert list(board["child"]) == [4, 3, 1]
    text = format_leaderboard(board)
    header, first = text.splitlines()[:2]
    assert first.split()[:4] == ["1", "child-004", "0.9500", "0.9400"]
    # the test column is headed by the whole metric name, right-aligned over its values
    assert header.split()[:4] == ["rank", "child", "reward", "accuracy"]
    assert header.index("accuracy") + len("accuracy") == first.index("0.9400") + len("0.9400")


def test_summaries():
    assert architecture_summary(ARCH) == "cell=gru layers=[40 tanh] [0]"
    assert flatten_architecture(ARCH) == {
        "cell": "gru",
        "layers": 2,
        "layers.0.units": 40,
        "layers.0.activation": "tanh",
        "layers.1.units": 0,
    }
    assert format_seconds(59) == "0:59" and format_seconds(3725) == "1:02:05"
