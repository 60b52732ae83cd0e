"""The Tune searcher adapter and the search config, without starting Ray."""

from __future__ import annotations

import math

import pytest

from controller import make_controller
from search.child_setup import ChildSetup
from search.config import ConfigError, SearchConfig, default_tracking_uri
from search.searcher import ControllerSearcher, SearchError
from spaces import load_space
from spaces.families import InvalidArchitecture, build_model

SETUP = ChildSetup(task="digits", family="cnn", space="cnn", epochs=1, batch_size=64, lr=1e-3)


def digits_validator(space):
    def validate(architecture):
        try:
            build_model(space.family, architecture, (1, 8, 8), 10)
        except InvalidArchitecture as exc:
            return str(exc)
        return None

    return validate


def test_suggest_asks_and_complete_tells():
    space = load_space("cnn")
    controller = make_controller("random", space, seed=1)
    rejected = []
    searcher = ControllerSearcher(
        controller, SETUP, digits_validator(space), on_invalid=lambda c, r: rejected.append(r)
    )
    configs = [searcher.suggest(f"t{i}") for i in range(40)]
    for config in configs:
        assert config["setup"] == SETUP
        assert space.encode(config["architecture"]) is not None
        build_model("cnn", config["architecture"], (1, 8, 8), 10)  # every suggestion builds
    # cnn on 8x8 images: some proposals downsample below 1x1 and were told reward 0 instead
    assert rejected and all("1x1" in reason or "below" in reason for reason in rejected)
    assert len({c["train_seed"] for c in configs}) == len(configs)
    for i, reward in enumerate([0.5, None, math.nan, math.inf]):
        searcher.on_trial_complete(f"t{i}", {"reward": reward})
    searcher.on_trial_complete("t4", error=True)
    searcher.on_trial_complete("unknown-trial", {"reward": 1.0})  # ignored, no crash
    assert len(searcher.live) == 35


def test_unbuildable_proposals_in_a_row_stop_the_search_with_a_reason():
    space = load_space("mlp")
    searcher = ControllerSearcher(
        make_controller("random", space, seed=0),
        SETUP,
        lambda arch: "too wide for this task",
        max_skipped_in_row=5,
    )
    with pytest.raises(SearchError, match="5 architectures in a row.*too wide"):
        searcher.suggest("t0")


def test_save_and_restore_continue_identically(tmp_path):
    space = load_space("mlp")

    def searcher():
        return ControllerSearcher(
            make_controller("reinforce", space, seed=7), SETUP, lambda arch: None
        )

    first = searcher()
    for i in range(6):
        first.suggest(f"t{i}")
        first.on_trial_complete(f"t{i}", {"reward": i / 10})
    path = tmp_path / "searcher.pt"
    first.save(str(path))
    second = searcher()
    second.restore(str(path))
    for i in range(6, 12):
        assert first.suggest(f"t{i}")["architecture"] == second.suggest(f"t{i}")["architecture"]
        first.on_trial_complete(f"t{i}", {"reward": 0.3})
        second.on_trial_complete(f"t{i}", {"reward": 0.3})


def test_config_defaults_and_name():
    config = SearchConfig()
    assert (config.task, config.space, config.controller) == ("digits", "cnn", "reinforce")
    assert config.name == "digits-cnn"
    assert SearchConfig(space="some/dir/my-space.yaml").name == "digits-my-space"
    assert SearchConfig(task="ucr:GunPoint", space="rnn").name == "ucr-GunPoint-rnn"


def test_tracking_uri_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert SearchConfig().resolved_tracking_uri == "http://127.0.0.1:5999"
    assert SearchConfig(tracking_uri="sqlite:///x.db").resolved_tracking_uri == "sqlite:///x.db"


def test_config_file_flags_win(tmp_path):
    path = tmp_path / "search.yaml"
    path.write_text("space: mlp\nbudget: 9\ncpus-per-trial: 0.5\ncontroller_options: {lr: 0.1}\n")
    config = SearchConfig.from_file(path, budget=3)
    assert (config.space, config.budget, config.cpus_per_trial) == ("mlp", 3, 0.5)
    assert config.controller_options == {"lr": 0.1}
    assert config.name == "digits-mlp"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budget: -1\n", "budget: got -1, expected an integer >= 1"),
        ("budget: 2.5\n", "budget: got 2.5, expected an integer"),
        ("gpus_per_trial: lots\n", "gpus_per_trial: got 'lots', expected a number"),
        ("[1, 2]\n", "expected a mapping"),
        ("colour: red\n", "colour: unknown setting"),
        ("budget: [\n", "not valid YAML"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    path = tmp_path / "search.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        SearchConfig.from_file(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


TINY = {"family": "mlp", "decisions": [{"name": "width", "choices": [8, 16, 32]}]}


def tiny_searcher(duplicates, reused, max_skipped_in_row=50, seed=0, include=None):
    from spaces import Space

    space = Space.from_dict(TINY)
    return ControllerSearcher(
        make_controller("random", space, seed=seed),
        SETUP,
        lambda arch: None,
        key_of=space.key,
        on_reuse=lambda c, key, reward: reused.append((c.architecture["width"], reward)),
        duplicates=duplicates,
        max_skipped_in_row=max_skipped_in_row,
        include=include,
    )


def test_known_architectures_are_answered_from_cache_and_the_budget_counts_trainings():
    reused = []
    searcher = tiny_searcher("reuse", reused)
    trained = {}
    for i in range(3):  # three architectures in all: each trains once
        config = searcher.suggest(f"t{i}")
        width = config["architecture"]["width"]
        assert width not in trained
        trained[width] = width / 100
        searcher.on_trial_complete(f"t{i}", {"reward": width / 100})
    assert sorted(trained) == [8, 16, 32]
    assert reused and all(reward == width / 100 for width, reward in reused)
    # every architecture known: the controller has nothing new, the search ends quietly
    assert searcher.suggest("t3") == ControllerSearcher.FINISHED


def test_a_duplicate_of_a_training_child_waits_for_its_reward():
    reused = []
    searcher = tiny_searcher("reuse", reused, seed=1)  # random asks 16, 16, 32, ...
    assert searcher.suggest("a")["architecture"]["width"] == 16
    assert searcher.suggest("b")["architecture"]["width"] == 32  # the second 16 waits
    assert reused == []
    searcher.on_trial_complete("a", {"reward": 0.5})
    assert reused == [(16, 0.5)] and not searcher.waiting


def test_retrain_tells_the_mean_of_every_training():
    told = []
    searcher = tiny_searcher("retrain", [])
    original_tell = searcher.controller.tell
    searcher.controller.tell = lambda c, r: (
        told.append((c.architecture["width"], r)),
        original_tell(c, r),
    )
    rewards = {}
    for i in range(12):
        width = searcher.suggest(f"t{i}")["architecture"]["width"]
        reward = 0.5 + 0.01 * len(rewards.setdefault(width, []))
        rewards[width].append(reward)
        searcher.on_trial_complete(f"t{i}", {"reward": reward})
        assert told[-1] == (width, pytest.approx(sum(rewards[width]) / len(rewards[width])))
    assert max(len(v) for v in rewards.values()) > 1  # duplicates trained again


def test_included_architectures_train_first_and_answer_the_controllers_duplicates():
    reused = []
    # random asks 16, 16, 32, ...
    searcher = tiny_searcher("reuse", reused, seed=1, include=[{"width": 16}])
    told = []
    original_tell = searcher.controller.tell
    searcher.controller.tell = lambda c, r: (told.append(r), original_tell(c, r))
    first = searcher.suggest("base")
    assert first["architecture"] == {"width": 16} and first["included"]
    assert first["candidate_id"] < 0  # never one of the controller's ids
    assert told == []  # the controller is asked nothing for it
    second = searcher.suggest("c0")  # the controller's two 16s wait for the included one
    assert second["architecture"]["width"] == 32 and "included" not in second
    searcher.on_trial_complete("base", {"reward": 0.7})
    assert reused == [(16, 0.7), (16, 0.7)] and told == [0.7, 0.7]


def test_include_reads_files_and_rejects_what_is_not_an_architecture(tmp_path):
    path = tmp_path / "baseline.yaml"
    path.write_text("- {width: 16}\n- {width: 32}\n")
    assert SearchConfig(include=str(path)).included_architectures() == [
        {"width": 16},
        {"width": 32},
    ]
    assert SearchConfig(include={"width": 8}).included_architectures() == [{"width": 8}]
    with pytest.raises(ConfigError, match="include: .*missing.yaml: cannot read"):
        SearchConfig(include=str(tmp_path / "missing.yaml"))
    path.write_text("just text\n")
    with pytest.raises(ConfigError, match="expected an architecture"):
        SearchConfig(include=str(path))


def test_confirmation_retrains_the_best_architectures_after_the_budget():
    space = load_space("mlp")
    controller = make_controller("random", space, seed=0)
    told = []
    tell = controller.tell
    controller.tell = lambda candidate, reward: (told.append(reward), tell(candidate, reward))
    searcher = ControllerSearcher(
        controller, SETUP, lambda arch: None, budget=4, confirm=2, confirm_runs=2, seed=1
    )
    assert searcher.planned == 8
    first = [searcher.suggest(f"t{i}") for i in range(4)]
    assert searcher.suggest("t4") is None  # the ranking waits for every training to end
    for i, reward in enumerate([0.5, 0.9, 0.7, 0.1]):
        searcher.on_trial_complete(f"t{i}", {"reward": reward})
    confirmations = [searcher.suggest(f"t{i}") for i in range(4, 8)]
    # the two best (0.9, then 0.7), twice each, with new seeds, marked, not told
    expected = [first[1]["architecture"]] * 2 + [first[2]["architecture"]] * 2
    assert [c["architecture"] for c in confirmations] == expected
    assert all(c["confirmation"] for c in confirmations)
    seeds = {c["train_seed"] for c in first + confirmations}
    assert len(seeds) == 8
    assert searcher.suggest("t8") == "FINISHED"
    for i, reward in zip(range(4, 8), [0.6, 0.6, 0.8, 0.8], strict=True):
        searcher.on_trial_complete(f"t{i}", {"reward": reward})
    assert told == [0.5, 0.9, 0.7, 0.1]  # the controller heard of its own proposals only
    assert searcher.planned == 8 and not searcher.live


def test_confirmation_follows_a_controller_that_ran_out_early(tmp_path):
    one = tmp_path / "one.yaml"
    one.write_text("family: mlp\ndecisions:\n  - {name: width, choices: [8]}\n")
    space = load_space(str(one))  # a single architecture: the controller soon knows it all
    searcher = ControllerSearcher(
        make_controller("random", space, seed=0),
        SETUP,
        lambda arch: None,
        budget=10,
        confirm=3,
        confirm_runs=2,
        max_skipped_in_row=3,
    )
    config = searcher.suggest("t0")
    searcher.on_trial_complete("t0", {"reward": 0.4})
    confirmations = [searcher.suggest(f"t{i}") for i in (1, 2)]
    assert searcher.exhausted
    assert [c["architecture"] for c in confirmations] == [config["architecture"]] * 2
    assert searcher.suggest("t3") == "FINISHED"
    assert searcher.planned == 3  # one training and its two confirmations


def test_with_confirmations_the_best_architecture_on_average_ranks_first():
    from search.records import SearchLog

    log = SearchLog(budget=8)
    trainings = [  # architecture, reward, params, confirmation
        ("lucky", 0.99, 10, False),
        ("steady", 0.98, 20, False),
        ("steady", 0.97, 20, True),
        ("steady", 0.975, 20, True),
        ("shaky", 0.985, 5, False),
        ("shaky", 0.90, 5, True),
        ("shaky", 0.91, 5, True),
        ("unconfirmed", 0.95, 1, False),
    ]
    for i, (name, reward, params, confirmation) in enumerate(trainings):
        record = log.add(f"t{i}", i, {"name": name})
        record.status, record.reward, record.confirmation = "finished", reward, confirmation
        record.metrics = {"params": params}
    board = log.leaderboard()
    # confirmed architectures first, by mean reward; within one, by reward; then the rest
    assert list(board["reward"]) == [0.98, 0.975, 0.97, 0.985, 0.91, 0.90, 0.99, 0.95]
    assert list(board["trainings"].head(3)) == [3, 3, 3]
    assert board["mean_reward"].iloc[0] == pytest.approx(0.975)
    assert log.best.reward == 0.98 and log.best.architecture == {"name": "steady"}
    for record in log.children.values():  # no confirmation: the best single reward
        record.confirmation = False
    assert log.best.reward == 0.99 and list(log.leaderboard()["reward"])[:2] == [0.99, 0.985]
