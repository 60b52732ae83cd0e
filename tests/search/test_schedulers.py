"""Early stopping: where ASHA's rungs lie, what the controller is told about a child stopped
early, and a search through real Ray and MLflow that stops children and still finds the best
architecture of a toy objective."""

from __future__ import annotations

import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from controller import make_controller
from search.child_setup import ChildSetup
from search.config import ConfigError, SearchConfig
from search.schedulers import StoppedChildren, concrete_scheduler, make_scheduler, rung_epochs
from search.searcher import ControllerSearcher
from search.tags import STATUS_TAG, STOPPED_EPOCH_TAG
from spaces import load_space
from tests.search.toy_search import cli, command, env

TOY_SPACE = """\
family: custom
decisions:
  - {name: a, choices: [0, 1, 2, 3, 4]}
  - {name: b, choices: [0, 1, 2, 3, 4]}
  - {name: c, choices: [0, 1, 2, 3, 4]}
"""

TOY_OBJECTIVE = """\
def score(architecture, report):
    with open(STARTS, "a") as f:
        f.write("started\\n")
    quality = (architecture["a"] + architecture["b"] + architecture["c"]) / 12
    for epoch in range(1, 10):
        value = quality * (1 - 0.5 ** epoch)
        report({"reward": value, "val_accuracy": value})
    return {"reward": value, "val_accuracy": value}
"""


def test_rungs_lie_before_the_last_epoch():
    assert rung_epochs(20, 2, 3) == [2, 6, 18]
    assert rung_epochs(18, 2, 3) == [2, 6]  # a rung at the last epoch would stop a done child
    assert rung_epochs(9, 1, 3) == [1, 3]
    asha = make_scheduler("asha", 20, 2, 3)
    assert [[m for m, _ in b._rungs] for b in asha._brackets] == [[18, 6, 2]]
    hyperband = make_scheduler("hyperband", 20, 2, 3)
    brackets = [[m for m, _ in b._rungs] for b in hyperband._brackets]
    assert brackets == [[18, 6, 2], [18, 6], [18], []]  # the last bracket stops no one
    assert make_scheduler("fifo", 20, 2, 3) is None


def test_a_scheduler_needs_a_rung_before_the_last_epoch():
    with pytest.raises(ConfigError, match="grace_epochs: 5 is not below epochs"):
        SearchConfig(scheduler="asha", epochs=5, grace_epochs=5)
    with pytest.raises(ConfigError, match="reduction_factor"):
        SearchConfig(scheduler="asha", reduction_factor=1)
    SearchConfig(scheduler="fifo", epochs=2, grace_epochs=5)  # fifo stops no one: no rung needed
    SearchConfig(epochs=2, grace_epochs=5)  # nor the default, which is fifo there


def test_the_default_scheduler_is_asha_wherever_a_child_can_be_stopped():
    assert SearchConfig().scheduler == "auto"
    assert concrete_scheduler("auto", 20, 2, reports_epochs=True) == "asha"
    assert concrete_scheduler("auto", 2, 2, reports_epochs=True) == "fifo"  # no rung before 2
    assert concrete_scheduler("auto", 20, 2, reports_epochs=False) == "fifo"
    for name in ("fifo", "asha", "hyperband"):
        assert concrete_scheduler(name, 20, 2, reports_epochs=False) == name


class _Trial:
    def __init__(self, trial_id: str, config: dict | None = None):
        self.trial_id, self.config = trial_id, config or {}


def test_the_final_report_is_never_judged_and_rungs_survive_a_resume():
    scheduler = make_scheduler("asha", 9, 1, 3)
    scheduler.set_search_properties("reward", "max")
    for i, value in enumerate([0.9, 0.8, 0.7]):
        trial = _Trial(f"t{i}")
        scheduler.on_trial_add(None, trial)
        scheduler.on_trial_result(None, trial, {"training_iteration": 1, "reward": value})
    low = _Trial("low")
    scheduler.on_trial_add(None, low)
    # below the best third of those that reached epoch 1: stopped
    assert scheduler.on_trial_result(None, low, {"training_iteration": 1, "reward": 0.1}) == "STOP"
    late = _Trial("late")
    scheduler.on_trial_add(None, late)
    final = {"training_iteration": 1, "reward": 0.0, "final": True}
    assert scheduler.on_trial_result(None, late, final) == "CONTINUE"
    confirming = _Trial("confirming", {"confirmation": True})  # retrains a best architecture
    scheduler.on_trial_add(None, confirming)
    low_start = {"training_iteration": 1, "reward": 0.1}
    assert scheduler.on_trial_result(None, confirming, low_start) == "CONTINUE"

    again = make_scheduler("asha", 9, 1, 3)
    again.set_search_properties("reward", "max")
    again.load_rungs(scheduler.rungs_state())
    assert again.rungs_state() == scheduler.rungs_state()
    other = _Trial("other")
    again.on_trial_add(None, other)
    assert again.on_trial_result(None, other, {"training_iteration": 1, "reward": 0.2}) == "STOP"


def test_a_stopped_child_is_estimated_on_the_full_budgets_scale():
    curves = StoppedChildren()
    assert curves.estimate(2, 0.5) == 0.5  # nobody trained in full yet: its own reward
    for trial, values, final in [("a", [0.4, 0.6, 0.8], 0.8), ("b", [0.2, 0.5, 0.6], 0.6)]:
        for value in values:
            curves.epoch(trial, value)
        curves.finished(trial, final)
    # gains from epoch 1 to the end: 0.4 and 0.4; from epoch 2: 0.2 and 0.1 (median 0.15)
    assert curves.estimate(1, 0.1) == pytest.approx(0.5)
    assert curves.estimate(2, 0.3) == pytest.approx(0.45)
    curves.epoch("c", 0.3)
    assert curves.stopped("c") == (1, pytest.approx(0.7))
    restored = StoppedChildren()
    restored.load_state_dict(curves.state_dict())
    assert restored.estimate(2, 0.3) == pytest.approx(0.45)


def test_a_stopped_child_is_never_told_it_beat_those_ahead_of_it():
    curves = StoppedChildren()
    # a fast starter and a slow one, both trained in full
    for trial, values in [("fast", [0.90, 0.95, 0.96]), ("slow", [0.50, 0.80, 0.95])]:
        for value in values:
            curves.epoch(trial, value)
        curves.finished(trial, values[-1])
    # stopped at epoch 1 at 0.8: 0.8 + the median gain (0.06, 0.45) would be 1.055, above
    # both; the fast starter was ahead of it then and ended at 0.96
    assert curves.estimate(1, 0.8) == pytest.approx(0.96)
    # ahead of both at epoch 1: only the median gain applies
    assert curves.estimate(1, 0.92) == pytest.approx(0.92 + 0.255)


class _Recording:
    """A random controller that records what it is told."""

    def __init__(self, space):
        self.inner = make_controller("random", space, seed=0)
        self.told: list[float] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def tell(self, candidate, reward):
        self.told.append(reward)
        self.inner.tell(candidate, reward)


def test_the_controller_hears_the_estimate_not_the_last_epoch(tmp_path):
    (tmp_path / "toy.yaml").write_text(TOY_SPACE)
    space = load_space(str(tmp_path / "toy.yaml"), check_family=False)
    controller = _Recording(space)
    setup = ChildSetup(task="toy", family="custom", space="toy", epochs=3, batch_size=1, lr=1.0)
    searcher = ControllerSearcher(controller, setup, lambda arch: None, budget=3)
    for trial, values in [("full-1", [0.2, 0.5, 0.9]), ("full-2", [0.3, 0.6, 0.7])]:
        searcher.suggest(trial)
        for epoch, value in enumerate(values, start=1):
            searcher.on_trial_result(trial, {"training_iteration": epoch, "reward": value})
        final = {"training_iteration": 4, "reward": values[-1], "final": True}
        searcher.on_trial_complete(trial, final)
    searcher.suggest("stopped")
    # Tune hands the searcher the stopping result only at the end, as the trial's last result
    searcher.on_trial_complete("stopped", {"training_iteration": 1, "reward": 0.1})
    assert searcher.stopped_early["stopped"] == (1, pytest.approx(0.1 + 0.55))
    assert controller.told == [pytest.approx(0.9), pytest.approx(0.7), pytest.approx(0.65)]
    state = searcher.state_dict()
    assert [final for _, final in state["curves"]["full"]] == [0.9, 0.7]


@pytest.mark.slow
def test_a_search_that_stops_children_still_finds_the_best(tmp_path):
    """Killed with SIGKILL a third of the way and resumed: the rungs and curves go on. The
    scheduler is the default, which is asha for an objective that reports its epochs."""
    starts = tmp_path / "started.txt"
    (tmp_path / "toycurve.py").write_text(f"STARTS = {str(starts)!r}\n" + TOY_OBJECTIVE)
    (tmp_path / "toy.yaml").write_text(TOY_SPACE)
    args = ("search", "--objective", "toycurve:score", "--space", "toy.yaml", "--name", "toy")
    args += ("--epochs", "9", "--grace-epochs", "1", "--budget", "30")
    args += ("--concurrency", "2", "--seed", "0")
    with (tmp_path / "killed.out").open("w") as sink:
        killed = subprocess.Popen(
            command(*args), stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path, env=env()
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and (
            not starts.exists() or len(starts.read_text().split()) < 12
        ):
            assert killed.poll() is None, (tmp_path / "killed.out").read_text()[-3000:]
            time.sleep(0.1)
        killed.kill()
        killed.wait(timeout=60)
    result = cli(tmp_path, "resume", "toy", timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = (tmp_path / "killed.out").read_text() + result.stdout
    assert "asha may stop a child at epoch 1, 3" in result.stdout
    assert "stopped at epoch" in printed and "stopped early" in result.stdout

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy")
    runs = client.search_runs([experiment.experiment_id], "tags.`rlnas.role` = 'child'")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`rlnas.role` = 'search'")
    assert parent.data.params["scheduler"] == "asha"  # what it ran with, not "auto"
    stopped = [r for r in runs if r.data.tags[STATUS_TAG] == "stopped"]
    full = [r for r in runs if r.data.tags[STATUS_TAG] == "finished"]
    assert stopped and full and len(stopped) + len(full) == 30
    for run in stopped:
        assert int(run.data.tags[STOPPED_EPOCH_TAG]) in (1, 3)
        assert run.info.status == "FINISHED"
        # its per-epoch series ends at the epoch it reached
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert max(m.step for m in history) == int(run.data.tags[STOPPED_EPOCH_TAG])
        assert run.data.metrics["train_seconds"] > 0  # what it cost until it was stopped
    best = max(full, key=lambda r: r.data.metrics["reward"])
    assert best.data.params["a"] == best.data.params["b"] == best.data.params["c"] == "4"
    assert max(r.data.metrics["reward"] for r in stopped) < best.data.metrics["reward"]

    board = cli(tmp_path, "leaderboard", "toy", "--top", "30", timeout=120)
    assert board.returncode == 0, board.stderr
    assert "a=4 b=4 c=4" in board.stdout.splitlines()[1]
    show = cli(tmp_path, "show", "toy", timeout=120)
    assert f"30 of 30 children trained ({len(stopped)} stopped early)" in show.stdout


def test_a_scheduler_needs_an_objective_that_reports_epochs(tmp_path):
    from search import run_search

    (tmp_path / "toy.yaml").write_text(TOY_SPACE)
    config = SearchConfig(
        objective=lambda arch: 1.0,
        space=str(tmp_path / "toy.yaml"),
        scheduler="asha",
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    with pytest.raises(ConfigError, match="the objective reports none"):
        run_search(config)


def test_children_stopped_early_rank_after_those_trained_in_full():
    from search.formatting import format_leaderboard
    from search.records import SearchLog

    log = SearchLog(budget=3)
    for trial, reward, status, epoch in [("a", 0.95, "stopped", 2), ("b", 0.90, "finished", 0)]:
        record = log.add(trial, 0, {"width": trial})
        record.status, record.reward, record.stopped_epoch = status, reward, epoch
        record.metrics = {"reward": reward}
    board = log.leaderboard()
    assert list(board["stopped_epoch"]) == [0, 2]  # the full child first despite its reward
    assert log.best.trial_id == "b"
    lines = format_leaderboard(board).splitlines()
    assert "stop@2" in lines[2] and "stop@" not in lines[1]


def test_an_architectures_mean_counts_its_full_trainings_not_the_estimates_of_stopped_ones():
    from search.records import SearchLog

    log = SearchLog(budget=5)
    trainings = [  # (architecture, reward, stopped at epoch): "wide" retrained after a stop
        ("wide", 0.99, 2),
        ("wide", 0.93, 0),
        ("wide", 0.95, 0),
        ("thin", 0.97, 2),
        ("thin", 0.96, 3),
    ]
    for i, (name, reward, epoch) in enumerate(trainings):
        record = log.add(f"t{i}", 0, {"width": name})
        record.status = "stopped" if epoch else "finished"
        record.reward, record.stopped_epoch = reward, epoch
        record.metrics = {"reward": reward}
    board = log.leaderboard().set_index("reward")
    assert board.loc[0.95, "trainings"] == 2  # the stopped training's estimate left out
    assert board.loc[0.95, "mean_reward"] == pytest.approx(0.94)
    assert board.loc[0.99, "mean_reward"] == pytest.approx(0.94)
    assert board.loc[0.97, "trainings"] == 2  # never trained in full: its estimates are all
    assert board.loc[0.97, "mean_reward"] == pytest.approx(0.965)
