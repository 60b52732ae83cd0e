"""The `local` controller: one-decision neighbours, first improvement, restarts, no repeats."""

from __future__ import annotations

import numpy as np

from controller import make_controller
from controller.local import one_decision_neighbours


def _differences(space, a: list[int], b: list[int]) -> int:
    """Decisions (by name) whose choice differs, counting a decision present in one only."""
    x = _named(space, a)
    y = _named(space, b)
    return sum(x.get(k) != y.get(k) for k in set(x) | set(y))


def _named(space, actions: list[int]) -> dict[str, int]:
    return {space.next_slot(actions[:t]).name: a for t, a in enumerate(actions)}


def test_neighbours_change_one_decision_and_are_legal(space):
    rng = np.random.default_rng(0)
    for _ in range(20):
        actions = space.sample(rng)
        neighbours = one_decision_neighbours(space, actions, rng)
        slots = [space.next_slot(actions[:t]) for t in range(len(actions))]
        assert len(neighbours) == sum(len(s.choices) - 1 for s in slots)
        for n in neighbours:
            space.decode(n)  # a whole, legal architecture
            first = next(t for t, (a, b) in enumerate(zip(actions, n, strict=False)) if a != b)
            assert _named(space, n[: first + 1]) != _named(space, actions[: first + 1])
            # every decision active in both keeps its choice, except the one changed
            x, y = _named(space, actions), _named(space, n)
            assert sum(x[k] != y[k] for k in set(x) & set(y)) == 1


def test_moves_to_the_first_better_neighbour_and_never_repeats(space):
    # reward: the number of decisions taken (deeper is better) - a single hill to climb
    controller = make_controller("local", space, seed=3)
    seen = set()
    rewards = []
    for _ in range(60):
        candidate = controller.ask()
        assert candidate.actions not in seen
        seen.add(candidate.actions)
        rewards.append(float(len(candidate.actions)))
        controller.tell(candidate, rewards[-1])
    assert controller.stats()["incumbent_reward"] == max(rewards)
    assert max(rewards) == max(len(space.sample(np.random.default_rng(s))) for s in range(500))


def test_a_local_optimum_restarts_from_a_random_architecture(space):
    controller = make_controller("local", space, seed=0)
    first = controller.ask()
    controller.tell(first, 1.0)  # the incumbent; every neighbour is worse
    neighbours = one_decision_neighbours(space, list(first.actions), np.random.default_rng(0))
    for _ in range(len(neighbours) + 1):
        candidate = controller.ask()
        if candidate.info["role"] == "random":
            break
        controller.tell(candidate, 0.0)
    assert controller.stats()["restarts"] >= 1
    assert candidate.info["role"] == "random"


def test_outstanding_neighbours_and_failures(space):
    controller = make_controller("local", space, seed=1)
    start = controller.ask()
    controller.tell(start, 0.5)
    a, b, c = controller.ask(), controller.ask(), controller.ask()
    assert {a.info["role"], b.info["role"], c.info["role"]} == {"neighbour"}
    controller.tell(b, None)  # failed: remembered, never the incumbent
    controller.tell(c, 0.9)  # the first improvement to come back wins
    assert controller.stats()["incumbent_reward"] == 0.9
    controller.tell(a, 0.7)  # better than the old incumbent, not the new one
    assert controller.stats()["incumbent_reward"] == 0.9
