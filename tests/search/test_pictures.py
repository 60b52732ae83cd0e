"""The parent run's pictures: drawn from a search log and MLflow's own series, without Ray."""

from __future__ import annotations

import contextlib

import pytest
from mlflow.tracking import MlflowClient

from search import pictures, plots
from search.records import SearchLog
from search.tracking import Tracker

PNG = b"\x89PNG\r\n\x1a\n"


def test_pareto_front_keeps_the_children_nothing_beats():
    points = [(1, 100, 0.5), (2, 200, 0.7), (3, 150, 0.4), (4, 300, 0.7), (5, 50, 0.3)]
    assert [p[0] for p in plots.pareto_front(points)] == [5, 1, 2]
    # less is better: the smallest network with the lowest error wins alone
    assert [p[0] for p in plots.pareto_front(points, lower_is_better=True)] == [5]


@pytest.fixture
def search(tmp_path):
    """A search's tracker and log: four finished children with per-epoch curves, a controller
    with statistics, and a sample grid on the best child."""
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "pictures")
    tracker.start_parent({"budget": 4}, "decisions: []\n", run_name="search")
    log = SearchLog(budget=4)
    rewards = [0.5, 0.8, 0.6, 0.7]
    for i, reward in enumerate(rewards, start=1):
        child = log.add(f"t{i}", i, {"width": i})
        child.run_id = tracker.client.create_run(tracker.experiment_id).info.run_id
        child.status, child.reward = "finished", reward
        child.metrics = {"reward": reward, "val_accuracy": reward, "params": 1000 * i}
        child.metrics["best_epoch"] = 2
        for epoch in (1, 2, 3):
            tracker.client.log_metric(child.run_id, "val_accuracy", reward * epoch / 3, step=epoch)
        stats = {"controller.entropy": 2.0 / i, "controller.asked": i, "reward": reward}
        tracker.log_parent(stats, step=i)
    samples = tmp_path / "samples"
    samples.mkdir()
    for epoch in (1, 2, 3):
        (samples / f"epoch-{epoch:03d}.png").write_bytes(PNG + bytes([epoch]))
    tracker.client.log_artifacts(log.children["t2"].run_id, str(samples), "samples")
    yield tracker, log
    tracker.close()


def _artifacts(tracker) -> dict[str, bytes]:
    tracker.flush()
    client = MlflowClient(tracker.tracking_uri)
    run_id = tracker.parent_run_id
    return {
        a.path: open(client.download_artifacts(run_id, a.path), "rb").read()
        for a in client.list_artifacts(run_id)
    }


def test_every_picture_is_logged_into_the_parent_run(search):
    tracker, log = search
    drawn = pictures.log_pictures(tracker, log, log.leaderboard())
    assert drawn == list(pictures.PICTURES)
    files = _artifacts(tracker)
    assert set(drawn) <= set(files)
    assert all(files[name].startswith(PNG) for name in drawn)
    # the best child's grid of the epoch it kept
    assert files["best_samples.png"] == PNG + bytes([2])


def test_a_picture_that_fails_is_left_out_with_a_warning(search, monkeypatch):
    tracker, log = search

    def broken(*args, **kwargs):
        raise ValueError("no ink")

    monkeypatch.setattr(plots, "pareto_plot", broken)
    with pytest.warns(UserWarning, match="pareto.png left out of the parent run: no ink"):
        drawn = pictures.log_pictures(tracker, log, log.leaderboard())
    assert "pareto.png" not in drawn and "rewards.png" in drawn
    assert "pareto.png" not in _artifacts(tracker)


def test_the_pareto_plot_says_how_many_stopped_children_it_leaves_out(search, monkeypatch):
    tracker, log = search
    stopped = log.add("t5", 5, {"width": 5})
    stopped.status, stopped.reward, stopped.stopped_epoch = "stopped", 0.9, 2
    stopped.metrics = {"reward": 0.9, "val_accuracy": 0.4, "params": 500}
    titles = []
    real_figure = plots._figure

    @contextlib.contextmanager
    def figure(path, *args, **kwargs):
        with real_figure(path, *args, **kwargs) as (fig, axes):
            yield fig, axes
            titles.append(axes[0][0].get_title())

    monkeypatch.setattr(plots, "_figure", figure)
    plots_drawn = pictures.log_pictures(tracker, log, log.leaderboard())
    assert "pareto.png" in plots_drawn
    pareto = next(t for t in titles if "on the front" in t)
    # the four trained in full, the stopped one (its epoch-2 accuracy) left out and said so
    assert "of 4 on the front" in pareto and "(1 stopped early, not shown)" in pareto


def test_nothing_to_show_draws_nothing(tmp_path):
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "empty")
    tracker.start_parent({"budget": 1}, "decisions: []\n", run_name="search")
    log = SearchLog(budget=1)
    assert pictures.log_pictures(tracker, log, log.leaderboard()) == []
    tracker.close()
