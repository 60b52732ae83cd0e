"""The searcher's stages: each one's state round-trips with work outstanding, and a saved
searcher continues exactly as the one that was never interrupted."""

from __future__ import annotations

import io
import json

import pytest
import torch

from controller import make_controller
from search.searcher import ControllerSearcher
from search.stages import (
    FINISHED,
    WAIT,
    Budget,
    ChainSettings,
    Confirmation,
    ControllerStage,
    Deduplication,
    FailureStop,
    IncludeQueue,
    Outcome,
    Proposal,
    Stage,
    TimeBudget,
    ValidityFilter,
    chain_stages,
)
from spaces import Space

SPACE = {
    "family": "mlp",
    "decisions": [
        {"name": "width", "choices": [8, 16, 32, 64]},
        {"name": "act", "choices": ["relu", "tanh", "gelu"]},
    ],
}


def reward_of(architecture) -> float:
    return (
        architecture["width"] / 100 + {"relu": 0.3, "tanh": 0.1, "gelu": 0.2}[architecture["act"]]
    )


def invalid_when_wide(architecture):
    return "too wide" if architecture["width"] == 64 and architecture["act"] == "tanh" else None


SETTINGS = {  # one chain per stage worth testing, each with that stage's state in play
    "plain": {},
    "validity": {"validate": invalid_when_wide},
    "include": {"include": [{"width": 8, "act": "relu"}, {"width": 32, "act": "gelu"}]},
    "retrain": {"duplicates": "retrain"},
    "budget": {"budget": 9},
    "confirmation": {"budget": 6, "confirm": 2, "confirm_runs": 2},
    "failures": {"max_failures": 3},
    # the clock: trainings ended so far (`Driver` sets it); stops a few trainings before 40
    "time": {"time_budget": 14.0, "clock": lambda: 0.0},
    "spent": {"validate": invalid_when_wide, "space_size": 12},
}


def chain(controller_name: str, **overrides):
    space = Space.from_dict(SPACE)
    settings = ChainSettings(
        validate=overrides.pop("validate", lambda arch: None),
        key_of=space.key,
        seed=3,
        max_skipped_in_row=overrides.pop("max_skipped_in_row", 30),
        **overrides,
    )
    return chain_stages(make_controller(controller_name, space, seed=5), settings)


def roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


class Driver:
    """Runs a chain as Tune would: up to two trainings out, ended oldest first; a time budget's
    clock reads the trainings ended so far."""

    def __init__(self, stage, fail_every: int = 0):
        self.stage = stage
        timed = stage.find(TimeBudget)
        if timed is not None:
            timed.clock = lambda: float(self.ended)
        self.out: list[Proposal] = []
        self.log: list[tuple] = []
        self.fail_every = fail_every
        self.ended = 0

    def step(self) -> bool:
        """One suggestion (while fewer than two are out) or one ending; False when done."""
        if len(self.out) < 2:
            proposal = self.stage.propose()
            if isinstance(proposal, Proposal):
                self.out.append(proposal)
                self.log.append(("propose", proposal.key, proposal.kind, proposal.train_seed))
                return True
            if proposal == FINISHED and not self.out:
                return False
        if not self.out:
            return True  # waiting
        proposal = self.out.pop(0)
        self.ended += 1
        if self.fail_every and self.ended % self.fail_every == 0:
            outcome = Outcome(None, "boom")
        else:
            outcome = Outcome(reward_of(proposal.architecture))
        self.stage.done(proposal, outcome)
        self.log.append(("done", proposal.key, outcome.reward))
        return True

    def run(self, steps: int) -> None:
        for _ in range(steps):
            if not self.step():
                break


# the controllers' own round trips are the controller suite's; here the stages' matter
CASES = [(case, "random") for case in sorted(SETTINGS)] + [("include", "evolution")]


@pytest.mark.parametrize(("case", "controller_name"), CASES)
def test_every_stage_state_round_trips_with_work_outstanding(case, controller_name):
    fail_every = 2 if case == "failures" else 0
    cut = Driver(chain(controller_name, **SETTINGS[case]), fail_every)
    steps = 12
    cut.run(steps)
    while not cut.out and steps < 40:  # cut where trainings are outstanding
        cut.step()
        steps += 1
    assert cut.out, "the state must be saved with trainings outstanding"
    whole = Driver(chain(controller_name, **SETTINGS[case]), fail_every)
    whole.run(steps)
    resumed = Driver(chain(controller_name, **SETTINGS[case]), fail_every)
    resumed.stage.load_chain_state(roundtrip(cut.stage.chain_state()))
    resumed.out = [Proposal.from_dict(roundtrip(p.to_dict())) for p in cut.out]
    resumed.ended = cut.ended
    assert json.dumps(roundtrip(resumed.stage.chain_state()), default=str) == json.dumps(
        roundtrip(cut.stage.chain_state()), default=str
    )
    whole.run(40)
    resumed.run(40)
    assert resumed.log == whole.log[len(cut.log) :]


def test_chain_is_built_in_the_documented_order():
    stage = chain("random", budget=4, confirm=1, time_budget=60.0, clock=lambda: 0.0)
    kinds = [type(s) for s in stage.stages()]
    assert kinds == [
        FailureStop,
        Confirmation,
        TimeBudget,
        Budget,
        Deduplication,
        IncludeQueue,
        ValidityFilter,
        ControllerStage,
    ]


def test_a_state_of_other_stages_is_refused():
    with pytest.raises(ValueError, match="do not match"):
        chain("random").load_chain_state(chain("random", confirm=1, budget=3).chain_state())


def test_failures_in_a_row_stop_the_chain_and_say_why():
    stage = chain("random", max_failures=3)
    proposals = [stage.propose() for _ in range(4)]
    stage.done(proposals[0], Outcome(None, "ValueError: bad"))
    stage.done(proposals[1], Outcome(0.5))  # a success starts the count again
    for proposal in proposals[2:]:
        stage.done(proposal, Outcome(None, "ObjectiveError: no reward"))
    assert not stage.stopped
    stage.done(stage.propose(), Outcome(None, "ObjectiveError: no reward"))
    assert stage.stopped.startswith("3 children failed in a row; the last: ObjectiveError")
    assert stage.propose() == FINISHED


def test_divergences_do_not_count_as_errors():
    stage = chain("random", max_failures=2)
    for _ in range(5):
        stage.done(stage.propose(), Outcome(None))  # failed without an error: diverged
    assert not stage.stopped


def searcher(**options) -> ControllerSearcher:
    space = Space.from_dict(SPACE)
    return ControllerSearcher(
        make_controller("evolution", space, seed=2),
        {"task": "toy"},
        lambda arch: None,
        key_of=space.key,
        seed=4,
        **options,
    )


def test_a_saved_searcher_trains_its_outstanding_children_again_first():
    first = searcher(budget=10)
    configs = {f"t{i}": first.suggest(f"t{i}") for i in range(3)}
    first.on_trial_complete("t0", {"reward": 0.4})
    state = roundtrip(first.state_dict())
    second = searcher(budget=10)
    second.load_state_dict(state)
    again = [second.suggest("n1"), second.suggest("n2")]
    assert [c["trains_again"] for c in again] == ["t1", "t2"]
    assert [c["architecture"] for c in again] == [configs["t1"]["architecture"]] * 1 + [
        configs["t2"]["architecture"]
    ]
    assert [c["train_seed"] for c in again] == [configs[t]["train_seed"] for t in ("t1", "t2")]
    # the controller is told of them as of its own outstanding candidates
    second.on_trial_complete("n1", {"reward": 0.6})
    second.on_trial_complete("n2", {"reward": 0.2})
    assert second.controller.stats()["told"] == 3
    assert second.planned == 10


def test_a_dead_worker_trains_the_child_again_once_without_the_controller_hearing():
    s = searcher(budget=5)
    config = s.suggest("a")
    s.on_trial_complete("a", error=True)
    assert s.will_rerun("a") and s.controller.stats()["told"] == 0
    again = s.suggest("b")
    assert again["trains_again"] == "a" and again["architecture"] == config["architecture"]
    s.on_trial_complete("b", error=True)  # the second death is the child's failure
    assert not s.will_rerun("b")
    assert s.controller.stats()["told"] == 1


def test_a_timed_out_child_fails_and_is_not_trained_again():
    s = searcher(budget=5)
    s.suggest("a")
    s.timed_out["a"] = 2.0
    assert s.outcome("a", None, True).error == "exceeded the child timeout of 2 s"
    s.on_trial_complete("a", error=True)
    assert not s.will_rerun("a") and s.controller.stats()["told"] == 1


def test_an_error_result_is_a_failure_with_its_reason():
    s = searcher(budget=5, max_failures=2)
    for trial in ("a", "b"):
        s.suggest(trial)
        s.on_trial_complete(trial, {"reward": float("nan"), "error": "ValueError: bad input"})
    assert s.failure_stop == "2 children failed in a row; the last: ValueError: bad input"
    assert s.suggest("c") == FINISHED and s.finished


def test_a_resumed_search_can_grow_its_budget():
    s = searcher(budget=2)
    for trial in ("a", "b"):
        s.suggest(trial)
        s.on_trial_complete(trial, {"reward": 0.5})
    assert s.suggest("c") == FINISHED
    resumed = searcher(budget=2)
    resumed.load_state_dict(roundtrip(s.state_dict()))
    resumed.grow_budget(4)
    assert isinstance(resumed.suggest("d"), dict) and resumed.planned == 4


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_time_budget_proposes_only_what_can_end_in_time():
    clock = Clock()
    stage = chain("random", budget=100, time_budget=100.0, clock=clock)
    first = stage.propose()
    clock.now = 30.0  # the first training took 30 s
    stage.done(first, Outcome(0.5))
    second = stage.propose()  # 70 s left: one more fits
    clock.now = 65.0
    stage.done(second, Outcome(0.5))  # 35 s: the longest so far
    assert stage.propose() == FINISHED  # 35 s left: the next could not end in time
    assert stage.planned() == 2


def test_confirmation_ranks_architectures_by_their_full_trainings_only():
    stage = chain("random", budget=2, confirm=1, confirm_runs=1)
    estimated, trained = stage.propose(), stage.propose()
    assert estimated.key != trained.key
    stage.done(estimated, Outcome(0.9, stopped=True))  # a scheduler's estimate, not a result
    stage.done(trained, Outcome(0.5))
    confirmation = stage.propose()
    assert confirmation.kind == "confirmation" and confirmation.key == trained.key


def test_a_time_budget_keeps_time_for_confirmation_and_counts_parallel_trainings():
    clock = Clock()
    stage = chain(
        "random", budget=100, time_budget=100.0, clock=clock, parallel=2, confirm=1
    )  # reserves 2 trainings, run 2 at a time: one wave of 10 s after the last proposal
    out = [stage.propose(), stage.propose()]
    clock.now = 10.0
    for proposal in out:
        stage.done(proposal, Outcome(0.5))
    assert isinstance(stage.propose(), Proposal)  # 90 s left > 2 waves of 10 s
    clock.now = 81.0
    assert stage.propose() == WAIT  # 19 s left: searching is over, confirmation waits
    timed = stage.find(TimeBudget)
    assert timed.ran_out and timed.left() == pytest.approx(19.0)


def test_a_time_budget_keeps_for_confirmation_the_time_the_best_architectures_took():
    clock = Clock()
    stage = chain("random", budget=100, time_budget=100.0, clock=clock, confirm=1, confirm_runs=1)
    timed = stage.find(TimeBudget)
    best = stage.propose()
    clock.now = 5.0
    stage.done(best, Outcome(0.9))  # the best so far took 5 s
    slow = stage.propose()
    clock.now = 45.0
    stage.done(slow, Outcome(0.1))  # a poor one took 40 s: a new child may take as long
    # 55 s left: 40 s for one more child, then 5 s to retrain the best (not another 40 s)
    assert timed.confirmation_seconds() == pytest.approx(5.0)
    another = stage.propose()
    assert isinstance(another, Proposal) and another.kind == "proposed"
    clock.now = 56.0
    stage.done(another, Outcome(0.2))
    confirming = stage.propose()  # 44 s left < 40 + 5: the search is over, confirmation runs
    assert timed.ran_out and confirming.kind == "confirmation" and confirming.key == best.key


def test_a_resume_may_give_a_time_budget_more_time():
    clock = Clock()
    stage = chain("random", budget=100, time_budget=50.0, clock=clock)
    proposal = stage.propose()
    clock.now = 40.0
    stage.done(proposal, Outcome(0.5))
    assert stage.propose() == FINISHED
    resumed = chain("random", budget=100, time_budget=100.0, clock=clock)
    resumed.load_chain_state(roundtrip(stage.chain_state()))
    assert isinstance(resumed.propose(), Proposal)  # 60 s left, 40 s the longest


@pytest.mark.parametrize("controller_name", ["random", "reinforce"])
def test_a_spent_space_ends_the_chain_without_a_long_run_of_reuses(controller_name):
    reused = []
    stage = chain(
        controller_name,
        validate=invalid_when_wide,
        space_size=12,
        include=[{"width": 8, "act": "relu"}],
        budget=100,
        max_skipped_in_row=1000,
        on_reuse=lambda proposal, reward: reused.append(proposal.key),
    )
    driver = Driver(stage)
    driver.run(2000)
    trained = [entry[1] for entry in driver.log if entry[0] == "propose"]
    assert len(trained) == len(set(trained)) == 11  # the twelfth cannot be built
    assert stage.find(Deduplication).exhausted
    assert stage.propose() == FINISHED
    assert len(reused) < 300  # without the space's size: a run of 1000 before it ends


def test_without_reuse_a_small_space_keeps_training_to_its_budget():
    stage = chain("random", duplicates="retrain", space_size=12, budget=20)
    driver = Driver(stage)
    driver.run(200)
    assert sum(entry[0] == "propose" for entry in driver.log) == 20
    assert not stage.find(Deduplication).exhausted


def test_an_architecture_whose_training_failed_is_trained_again_before_the_space_is_spent():
    stage = chain("random", space_size=12, budget=100, max_skipped_in_row=1000)
    driver = Driver(stage, fail_every=5)  # the fifth training fails: its architecture is retried
    driver.run(2000)
    ended = [entry for entry in driver.log if entry[0] == "done"]
    failed = [key for _, key, reward in ended if reward is None]
    assert failed and all(
        any(k == key and r is not None for _, k, r in ended) for key in failed
    )  # every failed architecture got a reward in a later training
    assert stage.find(Deduplication).exhausted and stage.propose() == FINISHED


def test_a_state_saved_before_spent_spaces_were_counted_still_loads():
    saved = chain("random", validate=invalid_when_wide, space_size=12)
    Driver(saved).run(6)
    state = roundtrip(saved.chain_state())
    del state["ValidityFilter"]["invalid_keys"]  # older states had no such entry
    resumed = chain("random", validate=invalid_when_wide, space_size=12, max_skipped_in_row=1000)
    resumed.load_chain_state(state)
    driver = Driver(resumed)
    driver.run(2000)
    assert resumed.find(Deduplication).exhausted and resumed.propose() == FINISHED


class _Repeating(Stage):
    """Proposes one architecture again and again; records what it is told."""

    def __init__(self):
        super().__init__()
        self.told: list[Outcome] = []

    def propose(self):
        return Proposal({"width": 8}, "w8", candidate_id=0, train_seed=0)

    def done(self, proposal, outcome):
        self.told.append(outcome)


def test_an_early_stopped_estimate_gives_way_to_full_trainings_when_duplicates_retrain():
    inner = _Repeating()
    stage = Deduplication(inner, "retrain")
    for outcome in [Outcome(0.99, stopped=True), Outcome(0.90), Outcome(0.94)]:
        stage.done(stage.propose(), outcome)
    told = [(round(o.reward, 4), o.stopped) for o in inner.told]
    # the estimate stands until a full training ends; then only full trainings are averaged
    assert told == [(0.99, True), (0.90, False), (0.92, False)]
    resumed = Deduplication(_Repeating(), "retrain")
    resumed.load_state_dict(roundtrip(stage.state_dict()))
    resumed.done(resumed.propose(), Outcome(0.5, stopped=True))
    assert resumed.inner.told[-1].reward == pytest.approx(0.92)  # a later estimate changes nothing
