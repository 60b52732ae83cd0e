"""Warm starts: a controller begins from what another of its kind learned, on the same space or
on one that shares decisions with it (`Controller.warm_start`, `controller.warm`)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

from controller import list_controllers, make_controller
from controller.warm import SharedDecisions
from spaces import Space
from tests.conftest import TOY

CONTROLLERS = list_controllers()
LEARNERS = [name for name in CONTROLLERS if name != "random"]


def reward(candidate) -> float:
    """The toy objective's hidden preference: an lstm cell, the 64 head, deep and wide layers."""
    a = candidate.architecture
    units = sum(layer["units"] for layer in a["layers"]) / 64
    return float(a["cell"] == "lstm") + float(a.get("head") == 64) + 0.3 * units


def other_space() -> Space:
    """The toy space less one cell choice, with a cell it lacks and a decision of its own."""
    data = copy.deepcopy(TOY)
    data["name"] = "other"
    data["decisions"][0]["choices"] = ["lstm", "gru", "transformer"]
    data["decisions"].append({"name": "dropout", "choices": [0.0, 0.5]})
    return Space.from_dict(data, source="<other>")


def saved(controller) -> dict:
    """`controller.state_dict()` as a search's controller.pt holds it."""
    buffer = io.BytesIO()
    torch.save(controller.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def trained(name: str, space, seed: int = 1, n: int = 80):
    controller = make_controller(name, space, seed=seed)
    for _ in range(n):
        candidate = controller.ask()
        controller.tell(candidate, reward(candidate))
    return controller


def first_rewards(controller, n: int = 10) -> list[float]:
    out = []
    for _ in range(n):
        candidate = controller.ask()
        out.append(reward(candidate))
        controller.tell(candidate, out[-1])
    return out


@pytest.mark.parametrize("target", ["same", "other"])
@pytest.mark.parametrize("name", LEARNERS)
def test_a_warm_start_proposes_toward_what_the_source_learned(name, target, space):
    """What is carried (a policy, Q-values) moves the first proposals. Q-learning's ranking is
    off here: the reward model is not carried, and ranked, a cold start is already as good from
    its fifth ask."""
    source_space, space = (space, space) if target == "same" else (other_space(), space)
    off = {"rank_samples": 0} if name in ("dqn", "qlearning") else {}
    warm, cold = [], []
    for seed in range(3):
        source = trained(name, source_space, seed=seed)
        controller = make_controller(name, space, seed=10 + seed, **off)
        carried = controller.warm_start(saved(source), source_space)
        assert carried
        warm += first_rewards(controller)
        cold += first_rewards(make_controller(name, space, seed=10 + seed, **off))
    assert np.mean(warm) > np.mean(cold) + 0.3, (np.mean(warm), np.mean(cold))


def test_random_search_carries_nothing_and_proposes_what_a_cold_one_does(space):
    warm = make_controller("random", space, seed=4)
    assert "nothing" in warm.warm_start(saved(trained("random", space)), space)
    cold = make_controller("random", space, seed=4)
    assert [warm.ask().actions for _ in range(10)] == [cold.ask().actions for _ in range(10)]


@pytest.mark.parametrize("name", CONTROLLERS)
def test_a_warm_started_controller_keeps_its_own_bookkeeping_and_round_trips(name, space):
    source = trained(name, space)
    source.ask()  # outstanding when it was saved: not carried
    warm = make_controller(name, space, seed=5)
    warm.warm_start(saved(source), space)
    assert warm.seed == 5
    assert warm.stats()["asked"] == warm.stats()["told"] == warm.stats()["pending"] == 0
    first_rewards(warm, 7)
    restored = make_controller(name, space, seed=0)
    restored.load_state_dict(saved(warm))
    assert first_rewards(warm, 15) == first_rewards(restored, 15)
    assert warm.stats() == restored.stats()


@pytest.mark.parametrize("name", CONTROLLERS)
def test_the_same_space_under_another_name_shares_everything(name, space):
    renamed = Space.from_dict({**TOY, "name": "renamed"}, source="<renamed>")
    carried = make_controller(name, space).warm_start(saved(trained(name, renamed)), renamed)
    assert carried.endswith("; all 5 decisions shared")


@pytest.mark.parametrize("name", CONTROLLERS)
def test_refusals_name_what_is_wrong(name, space):
    source = saved(trained(name, space, n=5))
    unrelated = Space.from_dict(
        {"name": "flat", "family": "mlp", "decisions": [{"name": "width", "choices": [1, 2]}]}
    )
    with pytest.raises(ValueError, match="'toy' shares no decision with space 'flat'"):
        make_controller(name, unrelated).warm_start(source, space)
    asked = make_controller(name, space)
    asked.ask()
    with pytest.raises(ValueError, match="before its first ask"):
        asked.warm_start(source, space)
    other = next(n for n in CONTROLLERS if n != name)
    with pytest.raises(ValueError, match="belongs to"):
        make_controller(other, space).warm_start(source, space)


@pytest.mark.parametrize("name", ["reinforce", "dqn"])
def test_a_network_of_another_size_is_refused(name, space):
    source = saved(trained(name, space, n=5))
    with pytest.raises(ValueError, match=r"64 hidden units, this one 16 \(option hidden\)"):
        make_controller(name, space, hidden=16).warm_start(source, space)


def test_reinforce_on_the_same_space_has_the_same_policy(space):
    source = trained("reinforce", space)
    warm = make_controller("reinforce", space, seed=7)
    warm.warm_start(saved(source), space)
    sequences = [list(source.ask().actions) for _ in range(20)]
    with torch.no_grad():
        ours, _ = warm._log_probs(sequences)
        theirs, _ = source._log_probs(sequences)
    torch.testing.assert_close(ours, theirs)
    assert warm.stats()["baseline"] == 0  # rewards of another search are not this one's


def test_qlearning_carries_its_q_values_and_goes_on_with_its_schedule(space):
    source = trained("qlearning", space)
    warm = make_controller("qlearning", space, seed=7)
    assert "epsilon as after its 80 architectures" in warm.warm_start(saved(source), space)
    assert warm._q == source._q and warm.epsilon == source.epsilon == 0.1
    assert warm.stats()["memory"] == 0


def test_qlearning_across_spaces_maps_each_state_by_its_decisions(space):
    other = other_space()
    source = trained("qlearning", other)
    warm = make_controller("qlearning", space)
    warm.warm_start(saved(source), other)
    # cell is the first decision of both; lstm is choice 2 here, 0 there
    row = warm._state(0, -1, -1)
    theirs = source._state(0, -1, -1)
    assert warm._q[row + 2] == source._q[theirs + 0] and warm._q[row + 1] == source._q[theirs + 1]
    assert warm._q[row + 0] == warm.options.initial_q  # rnn: not a choice there


def test_evolution_starts_from_the_population_without_a_random_phase(space):
    source = trained("evolution", space)
    warm = make_controller("evolution", space, seed=7)
    assert warm.warm_start(saved(source), space).startswith("its population of 20")
    assert list(warm._population) == list(source._population)
    assert warm.ask().info["parent"] >= 0  # a mutation of a member, not a random architecture


def test_local_search_starts_from_the_best_and_tries_best_known_neighbours_first(space):
    source = trained("local", space)
    warm = make_controller("local", space, seed=7)
    warm.warm_start(saved(source), space)
    best = max(source._rewards, key=source._rewards.get)
    first = warm.ask()
    assert first.actions == best and first.info["role"] == "start"
    warm.tell(first, 1.0)
    known = [a for a in warm._queue if tuple(a) in source._rewards]
    assert warm._queue[-len(known) :] == sorted(known, key=lambda a: source._rewards[tuple(a)])


def test_tpe_asks_the_best_finished_trials_first_through_the_shared_decisions(space):
    other = other_space()
    source = trained("tpe", other, n=30)
    source.ask()  # a RUNNING trial: not carried
    warm = make_controller("tpe", space)
    assert warm.warm_start(saved(source), other).startswith("its 10 best architectures")
    fixed = [t.system_attrs["fixed_params"] for t in warm._study.get_trials()]
    assert len(fixed) == 10 and all("dropout" not in f for f in fixed)
    finished = [t for t in source._study.get_trials() if t.state.name == "COMPLETE"]
    best = max(finished, key=lambda t: t.value)
    cell = {0: 2, 1: 1}  # lstm, gru (transformer has no counterpart)
    expected = {k: cell.get(v) if k == "cell" else v for k, v in best.params.items()}
    assert fixed[0] == {k: v for k, v in expected.items() if k != "dropout" and v is not None}
    warm.ask()
    asked = warm._study.get_trials()[0]
    assert asked.state.name == "RUNNING"
    assert {k: asked.params[k] for k in fixed[0]} == fixed[0]


def test_shared_decisions_match_by_name_and_choice_value(space):
    other = other_space()
    shared = SharedDecisions.between(other, space)
    assert SharedDecisions.between(space, space).identical and not shared.identical
    assert shared.choices[0] == {1: 1, 2: 0}  # gru, lstm; rnn is not a choice there
    assert shared.describe() == "5 of 5 decisions shared (in part: cell)"
    assert SharedDecisions.between(space, other).describe() == (
        "5 of 6 decisions shared (not: dropout; in part: cell)"
    )
    lstm_deep = other.encode({"cell": "lstm", "layers": [{"units": 0}], "head": 64, "dropout": 0.5})
    assert space.decode(shared.translate(lstm_deep)) == {
        "cell": "lstm",
        "layers": [{"units": 0}],
        "head": 64,
    }
    transformer = other.encode({"cell": "transformer", "layers": [], "dropout": 0.0})
    assert shared.translate(transformer) is None  # the cell has no counterpart here
    filled = shared.translate(transformer, np.random.default_rng(0))
    assert filled is not None and space.is_complete(filled)
