"""Ranked proposals (`controller.ranking`), shared by `reinforce`, `qlearning` and `dqn`."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
import torch

from controller import make_controller
from controller.ranking import Ranker


def run(controller, n: int) -> list[list[int]]:
    """Ask and tell `n` times with a reward that depends on the architecture."""
    out = []
    for _ in range(n):
        candidate = controller.ask()
        out.append(list(candidate.actions))
        controller.tell(candidate, float(sum(candidate.actions) % 3 + 0.1 * len(out[-1])))
    return out


def random_actions(space, rng: np.random.Generator) -> list[int]:
    actions: list[int] = []
    walk = space.walk()
    while (slot := walk.next_slot()) is not None:
        actions.append(int(rng.integers(len(slot.choices))))
        walk.take(actions[-1])
    return actions


def told_ranker(space, neighbours: int = 0) -> tuple[Ranker, list[tuple[float, list[int]]]]:
    """A ranker told 30 random architectures (reward: how many decisions took choice 1)."""
    ranker = Ranker(space, seed=0, samples=6, neighbours=neighbours, after=4)
    rng, history = np.random.default_rng(1), []
    for _ in range(30):
        actions = random_actions(space, rng)
        reward = float(sum(a == 1 for a in actions))
        ranker.tell(actions, reward)
        history.append((reward, actions))
    return ranker, history


def test_the_proposal_is_the_draw_one_member_ranks_first(space):
    ranker, history = told_ranker(space)
    assert ranker.ready
    rng = np.random.default_rng(2)
    draws = [random_actions(space, rng) for _ in range(40)]
    asked = {tuple(draws[0])}  # asked before: never proposed again
    it = iter(draws)
    chosen = ranker.propose(
        lambda _: next(it), list, list, asked, 0, history, np.random.default_rng(5)
    )
    offered = list(dict.fromkeys(tuple(d) for d in draws[:6] if tuple(d) != tuple(draws[0])))
    assert tuple(chosen) in offered and tuple(chosen) in asked
    member = int(np.random.default_rng(5).integers(ranker.model.members))  # as propose drew it
    scores = ranker.model.predict(np.stack([ranker.encode(a) for a in offered]))[member]
    assert scores[offered.index(tuple(chosen))] == pytest.approx(scores.max())


def test_neighbours_of_the_best_join_and_are_made_only_when_chosen(space):
    ranker, history = told_ranker(space, neighbours=1)
    best = max(history)[1]
    neighbours = {tuple(n) for n in ranker.neighbours_of_best(history)}
    assert neighbours and all(
        sum(a != b for a, b in zip(n, best, strict=False)) >= 1 for n in neighbours
    )
    made: list[list[int]] = []
    rng = np.random.default_rng(0)
    for seed in range(10):
        chosen = ranker.propose(
            lambda _: random_actions(space, rng),
            list,
            lambda actions: made.append(actions) or actions,
            set(),
            0,
            history,
            np.random.default_rng(seed),
        )
        assert (tuple(chosen) in neighbours) == (made[-1:] == [chosen])
    assert len(made) <= 10


def test_ranking_waits_for_rank_after_rewards(space):
    ranker = Ranker(space, seed=0, samples=8, neighbours=2, after=5)
    for i in range(4):
        assert not ranker.ready
        ranker.tell(random_actions(space, np.random.default_rng(i)), float(i))
    assert not ranker.ready
    ranker.tell(random_actions(space, np.random.default_rng(9)), 9.0)
    assert ranker.ready
    assert not Ranker(space, seed=0, samples=1, neighbours=2, after=2).on


# Proposals of seed 5 over 40 asks (`run`) before ranking existed in qlearning and dqn, and
# before REINFORCE drew its ranked candidates as one batch: ranking off must not change them.
BEFORE = {
    "qlearning": "8d6202c11876b148",
    "dqn": "432684448a4d5c4b",
    "reinforce": "cda0b224c5e4dfad",
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_rank_samples_0_proposes_exactly_as_before(name, space):
    proposals = run(make_controller(name, space, seed=5, rank_samples=0), 40)
    assert hashlib.sha1(json.dumps(proposals).encode()).hexdigest()[:16] == BEFORE[name]


@pytest.mark.parametrize("name", ["qlearning", "dqn", "reinforce"])
def test_ranked_controllers_keep_the_contract(name, space):
    """Legal, unasked once ranked, seeded, and restored exactly."""
    a, b = (make_controller(name, space, seed=3, rank_samples=8) for _ in range(2))
    proposals = run(a, 20)
    assert proposals == run(b, 20)
    assert all(space.is_complete(p) for p in proposals)
    ranked = {tuple(p) for p in proposals[4:]}  # from rank_after on: never asked before
    assert len(ranked) == 16 and not ranked & {tuple(p) for p in proposals[:4]}
    outstanding = a.ask()
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    restored = make_controller(name, space, seed=99)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for controller in (a, restored):
        controller.tell(outstanding, 1.0)
    assert run(a, 10) == run(restored, 10)
    assert a.stats() == restored.stats()


@pytest.mark.parametrize("name", ["qlearning", "dqn", "reinforce"])
@pytest.mark.parametrize("bad", [{"rank_samples": -1}, {"rank_after": 1}, {"rank_neighbours": 0.5}])
def test_bad_rank_options_are_refused(name, bad, space):
    with pytest.raises(ValueError, match=next(iter(bad))):
        make_controller(name, space, **bad)


def test_qlearning_replay_best_and_ucb_change_what_it_proposes(space):
    plain = run(make_controller("qlearning", space, seed=1, rank_samples=0), 40)
    for options in ({"replay_best": 4}, {"ucb": 0.5}):
        assert (
            run(make_controller("qlearning", space, seed=1, rank_samples=0, **options), 40) != plain
        )
    for bad in ({"replay_best": -1}, {"ucb": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_controller("qlearning", space, **bad)
