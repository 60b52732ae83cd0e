"""A toy search with a known best (after NNI's strategy sanity tests): REINFORCE with its
default options finds a hidden target architecture, random search in the same budget does not.

The reward is the fraction of decisions that match the target's (compared slot by slot over the
slots either architecture uses), so it is 1.0 exactly at the target. Targets have 4 layers.

Random search picks uniformly at every step, so one ask hits a 4-layer target with probability
p = 1/4 (depth) * (1/24)**4 (3 filters * 2 kernels * 4 activations per layer) * 1/3 (head)
  = 2.5e-7; within 2,000 asks, 1 - (1 - p)**2000 = 5.0e-4 per seed, and two or more of 10 seeds
with probability C(10, 2) * (5.0e-4)**2 = 1.1e-5: "at most 1 of 10" is certain for random search.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller import make_controller
from spaces import Space

SPACE = {
    "name": "toy-cnn",
    "family": "cnn",
    "decisions": [
        {
            "repeat": "layers",
            "count": [1, 2, 3, 4],
            "decisions": [
                {"name": "filters", "choices": [16, 32, 64]},
                {"name": "kernel", "choices": [3, 5]},
                {"name": "activation", "choices": ["relu", "elu", "gelu", "tanh"]},
            ],
        },
        {"name": "head", "choices": ["none", 64, 128]},
    ],
}
BUDGET = 2000
SEEDS = range(10)


def decisions(space: Space, actions) -> dict[int, int]:
    """Slot index -> action, for the slots an action sequence uses."""
    return {space.next_slot(actions[:t]).index: a for t, a in enumerate(actions)}


def asks_to_target(name: str, seed: int) -> int | None:
    """Asks until the controller proposes the target (None: not within the budget)."""
    space = Space.from_dict(SPACE, source="<toy-cnn>")
    rng = np.random.default_rng(1000 + seed)
    target_actions = [3]  # four layers, every other decision uniform
    while (slot := space.next_slot(target_actions)) is not None:
        target_actions.append(int(rng.integers(len(slot.choices))))
    target = decisions(space, target_actions)
    controller = make_controller(name, space, seed=seed)
    for i in range(1, BUDGET + 1):
        candidate = controller.ask()
        if list(candidate.actions) == target_actions:
            return i
        chosen = decisions(space, list(candidate.actions))
        slots = set(chosen) | set(target)
        controller.tell(candidate, sum(chosen.get(s) == target.get(s) for s in slots) / len(slots))
    return None


def test_the_space_is_large_enough():
    assert Space.from_dict(SPACE).cardinality() >= 10_000  # 1,038,600


@pytest.mark.slow
def test_reinforce_finds_the_target_and_random_search_does_not():
    reinforce = [asks_to_target("reinforce", seed) for seed in SEEDS]
    random = [asks_to_target("random", seed) for seed in SEEDS]
    assert sum(n is not None for n in reinforce) >= 9, reinforce
    assert sum(n is not None for n in random) <= 1, random
