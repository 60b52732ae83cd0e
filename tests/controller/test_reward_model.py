"""The reward model REINFORCE ranks its draws with: it learns, and it picks what it learned."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from controller import make_controller
from controller.reward_model import RewardModel, encode_actions, normal_scores
from spaces import Space

SPACE = Space.from_dict(
    {
        "family": "custom",
        "decisions": [
            {
                "repeat": "layers",
                "count": [1, 2, 3],
                "decisions": [
                    {"name": "width", "choices": [8, 16, 32, 64]},
                    {"name": "act", "choices": ["relu", "tanh", "elu"]},
                ],
            }
        ],
    }
)


def reward(actions: list[int]) -> float:
    """Additive in the decisions, with a penalty on depth: what the encoding can express."""
    arch = SPACE.decode(actions)
    return (
        sum(layer["width"] / 64 + (layer["act"] == "elu") for layer in arch["layers"])
        - 0.5 * (len(arch["layers"]) - 2) ** 2
    )


def random_actions(rng: np.random.Generator) -> list[int]:
    actions: list[int] = []
    while (slot := SPACE.next_slot(actions)) is not None:
        actions.append(int(rng.integers(len(slot.choices))))
    return actions


def test_the_encoding_marks_one_choice_per_active_decision():
    actions = random_actions(np.random.default_rng(0))
    x = encode_actions(SPACE, actions)
    assert x.shape == (SPACE.max_steps * SPACE.max_choices,)
    assert x.sum() == len(actions)


def test_normal_scores_keep_order_share_ties_and_ignore_scale():
    y = np.array([0.1, 0.97, 0.97, 0.5])
    scores = normal_scores(y)
    assert scores[0] < scores[3] < scores[1] == scores[2]
    np.testing.assert_allclose(normal_scores(1000 * y - 3), scores)


def told(rng: np.random.Generator, n: int) -> RewardModel:
    """A reward model told the rewards of `n` random architectures."""
    model = RewardModel(SPACE.max_steps * SPACE.max_choices, generator=torch.Generator())
    for _ in range(n):
        actions = random_actions(rng)
        model.add(encode_actions(SPACE, actions), reward(actions))
    return model


def test_the_model_ranks_unseen_architectures_after_sixty_told():
    rng = np.random.default_rng(1)
    model = told(rng, 60)
    test = [random_actions(rng) for _ in range(200)]
    predicted = model.predict(np.stack([encode_actions(SPACE, a) for a in test])).mean(0)
    assert spearmanr(predicted, [reward(a) for a in test]).statistic > 0.7


def test_ranked_reinforce_learns_faster_and_restores_exactly():
    def best_after(controller, n: int) -> float:
        best = -np.inf
        for _ in range(n):
            candidate = controller.ask()
            best = max(best, reward(list(candidate.actions)))
            controller.tell(candidate, reward(list(candidate.actions)))
        return best

    plain = [make_controller("reinforce", SPACE, seed=s, rank_samples=0) for s in range(6)]
    ranked = [make_controller("reinforce", SPACE, seed=s) for s in range(6)]  # the default
    assert np.median([best_after(c, 15) for c in ranked]) > np.median(
        [best_after(c, 15) for c in plain]
    )

    original = make_controller("reinforce", SPACE, seed=3)
    best_after(original, 20)
    restored = make_controller("reinforce", SPACE, seed=0)
    restored.load_state_dict(original.state_dict())
    assert [original.ask().actions for _ in range(5)] == [restored.ask().actions for _ in range(5)]


def test_an_upper_confidence_bound_picks_by_the_members_mean_and_spread():
    rng = np.random.default_rng(2)
    model = told(rng, 30)
    x = [encode_actions(SPACE, random_actions(rng)) for _ in range(50)]
    scores = model.predict(np.stack(x))
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert model.pick(x, generator, kappa=0.0) == int(np.argmax(scores.mean(0)))
    assert model.pick(x, generator, kappa=100.0) == int(np.argmax(scores.std(0)))
    assert torch.equal(generator.get_state(), state)  # nothing drawn
