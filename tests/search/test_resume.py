"""What a resume may change (where and how a search runs, and a larger budget only), and how
it ends the child runs an interruption left running."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from search.config import ConfigError, SearchConfig
from search.records import SearchLog
from search.resume import Resume, mark_cut_off, merged_config
from search.tags import KILLED_TAG, STATUS_TAG
from search.tracking import ChildRunCallback, Tracker


def resume(confirmation_queue=None) -> Resume:
    config = SearchConfig(space="mlp", budget=10, confirm=1, name="toy").to_dict()
    chain = {"Confirmation": {"queue": confirmation_queue}}
    state = {"config": config, "searcher": {"chain": chain}, "log": {"children": [], "budget": 12}}
    return Resume("run1", "KILLED", state)


def test_where_it_runs_and_a_larger_budget_may_change():
    config = merged_config(resume(), {"budget": 20, "concurrency": 1, "child_timeout": 5.0})
    assert (config.budget, config.concurrency, config.child_timeout) == (20, 1, 5.0)
    assert config.space == "mlp" and config.name == "toy"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 3}, r"changed settings: epochs \(20 -> 3\)"),
        ({"budget": 4}, r"changed settings: budget \(10 -> 4\)"),
        ({"seed": 1, "lr": 0.1}, r"seed \(0 -> 1\), lr \(0.003 -> 0.1\)"),
    ],
)
def test_changes_to_what_is_searched_are_refused_by_name(overrides, message):
    with pytest.raises(ConfigError, match=message):
        merged_config(resume(), overrides)


def test_the_budget_cannot_grow_once_confirmation_runs_started():
    with pytest.raises(ConfigError, match="confirmation runs have started"):
        merged_config(resume(confirmation_queue=["key"]), {"budget": 20})
    assert merged_config(resume(confirmation_queue=["key"]), {"budget": 10}).budget == 10


def trial(trial_id: str, width: int, reward: float | None = None) -> SimpleNamespace:
    """What `ChildRunCallback` reads of a Tune trial."""
    config = {"architecture": {"width": width}, "candidate_id": width, "train_seed": 0}
    last = {"reward": reward, "accuracy": reward} if reward is not None else {}
    return SimpleNamespace(trial_id=trial_id, config=config, last_result=last, checkpoint=None)


@pytest.fixture
def children(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "toy")
    tracker.start_parent({"space": "toy"}, "", "toy")
    callback = ChildRunCallback(tracker, SearchLog(budget=3))
    yield callback, MlflowClient(uri)
    tracker.close()


def test_a_childs_run_ends_only_once_the_state_recording_its_end_is_written(children):
    callback, reader = children
    seen = []

    def save_state():  # as `StateFile.save`: written after the tracking writes queued so far
        run_id = callback.log.children["t1"].run_id
        status = callback.log.children["t1"].status
        callback.tracker.after_writes(lambda: seen.append((status, reader.get_run(run_id))))

    callback.save_state = save_state
    callback.on_trial_start(0, [], trial("t1", 8))
    callback.on_trial_complete(0, [], trial("t1", 8, reward=0.75))
    callback.tracker.flush()
    [(status, run)] = seen
    assert status == "finished"  # the state saved knows the child ended...
    assert run.data.metrics["reward"] == 0.75  # ...after its result was written...
    assert run.info.status == "RUNNING"  # ...and before its run ended
    assert reader.get_run(run.info.run_id).info.status == "FINISHED"


def test_runs_left_running_end_as_the_saved_state_recorded_else_killed(children):
    callback, reader = children
    for trial_id, width in (("t1", 8), ("t2", 16), ("t3", 32)):
        callback.on_trial_start(0, [], trial(trial_id, width))
    callback.tracker.flush()
    ids = {t: r.run_id for t, r in callback.log.children.items()}
    tracker = callback.tracker

    killed = mark_cut_off(
        tracker.client,
        tracker.experiment_id,
        tracker.parent_run_id,
        {"t1": "finished", "t2": "failed"},
    )
    tracker.flush()
    assert killed == [ids["t3"]]
    runs = {t: reader.get_run(run_id) for t, run_id in ids.items()}
    assert runs["t1"].info.status == "FINISHED" and STATUS_TAG not in runs["t1"].data.tags
    assert runs["t2"].info.status == "FAILED"
    assert runs["t3"].info.status == "KILLED"
    assert (
        runs["t3"].data.tags[STATUS_TAG] == "killed"
        and "trains it again" in (runs["t3"].data.tags[KILLED_TAG])
    )
