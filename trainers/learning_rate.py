"""The learning rate of one training over its epochs, under `TrainOptions.lr_schedule`.

``constant`` keeps `lr`; ``cosine`` decays it per epoch towards 0 by the last epoch;
``plateau`` halves it whenever the training loss has not improved for a while, down to
`PLATEAU_MIN_LR`, as InceptionTime trains (Ismail Fawaz et al., 2020: Keras'
ReduceLROnPlateau on the training loss, factor 0.5, patience 50 of 1,500 epochs, minimum
1e-4). The patience is the same share of the epochs, so a short training reduces too.
"""

from __future__ import annotations

import math

from trainers.options import TrainOptions

__all__ = ["PLATEAU_FACTOR", "PLATEAU_MIN_LR", "LearningRate", "plateau_patience"]

PLATEAU_FACTOR = 0.5
"""``plateau``: the learning rate is multiplied by this at each plateau."""
PLATEAU_MIN_LR = 1e-4
"""``plateau``: the learning rate never goes below this (nor below `lr`)."""
PLATEAU_SHARE = 50 / 1500
"""``plateau``: epochs without improvement that make a plateau, as a share of the epochs."""
PLATEAU_MIN_DELTA = 1e-4
"""``plateau``: a loss lower than the best by less than this is no improvement."""


def plateau_patience(epochs: int) -> int:
    """Epochs without improvement of the training loss that make a plateau."""
    return max(1, round(epochs * PLATEAU_SHARE))


class LearningRate:
    """The learning rate of one training: `at(epoch)` before each epoch, `after(loss)` with
    the epoch's training loss."""

    def __init__(self, options: TrainOptions):
        self.options = options
        self.value = options.lr
        self.current = options.lr  # the last epoch's, as `at` gave it
        self.best = math.inf
        self.waited = 0

    def at(self, epoch: int) -> float:
        """The learning rate of epoch `epoch` (1-based)."""
        o = self.options
        if o.lr_schedule == "cosine":
            self.current = o.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / o.epochs))
        else:
            self.current = self.value
        return self.current

    def after(self, train_loss: float) -> None:
        """Hear the training loss of the epoch that just ended."""
        if self.options.lr_schedule != "plateau" or not math.isfinite(train_loss):
            return
        if train_loss < self.best - PLATEAU_MIN_DELTA:
            self.best, self.waited = train_loss, 0
            return
        self.waited += 1
        if self.waited >= plateau_patience(self.options.epochs):
            floor = min(PLATEAU_MIN_LR, self.options.lr)
            self.value, self.waited = max(floor, self.value * PLATEAU_FACTOR), 0
