"""`trainers.learning_rate`: the learning rate of one training over its epochs."""

from __future__ import annotations

import math

import pytest

from trainers.learning_rate import PLATEAU_MIN_LR, LearningRate, plateau_patience
from trainers.options import TrainOptions


def rates(schedule: str, losses: list[float], epochs: int = 90, lr: float = 1e-2) -> list[float]:
    """The learning rate of each epoch when the epochs end with `losses`."""
    rate = LearningRate(TrainOptions(epochs=epochs, seed=0, lr=lr, lr_schedule=schedule))
    out = []
    for epoch, loss in enumerate(losses, start=1):
        out.append(rate.at(epoch))
        rate.after(loss)
    return out


def test_the_patience_is_inception_times_share_of_the_epochs():
    assert plateau_patience(1500) == 50  # as the paper trains
    assert plateau_patience(90) == 3
    assert plateau_patience(12) == 1  # a short training still reduces


def test_plateau_halves_after_patience_epochs_without_improvement():
    # patience 3: improving, then flat for 3 epochs, then flat again
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.85, 0.85]
    assert rates("plateau", losses) == [1e-2] * 5 + [5e-3] * 4 + [2.5e-3]
    # a loss lower by less than 1e-4 is no improvement; a non-finite one is ignored
    assert rates("plateau", [1.0, 0.99995, 0.99995, math.nan, 1.0, 1.0]) == [1e-2] * 5 + [5e-3]


def test_plateau_never_goes_below_its_floor_nor_below_lr():
    flat = [1.0] * 60
    assert min(rates("plateau", flat)) == PLATEAU_MIN_LR
    assert set(rates("plateau", flat, lr=5e-5)) == {5e-5}


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_other_schedules_ignore_the_loss(schedule):
    flat = rates(schedule, [1.0] * 8, epochs=8)
    falling = rates(schedule, [1.0 / k for k in range(1, 9)], epochs=8)
    assert flat == falling
    if schedule == "constant":
        assert flat == [1e-2] * 8
    else:
        assert flat[0] == 1e-2 and flat == sorted(flat, reverse=True)
