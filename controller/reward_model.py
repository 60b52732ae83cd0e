"""A reward model learned from the architectures told so far: a small bootstrap ensemble of
MLPs over the one-hot action encoding (as BANANAS's predictor, White et al. 2021).

Controllers use it to rank several of their own proposals and train only the most promising
one: each member is trained on its own bootstrap resample of the told architectures, so the
members disagree where data is scarce, and picking the best proposal under one member drawn at
random (Thompson sampling) explores where the ensemble is unsure.

Targets are the rewards' normal scores (ranks mapped through the inverse normal CDF), so the
model sees the same scale whatever the reward's units and however skewed (a few failed
children at 0.1 beside accuracies of 0.97). Training continues from the current weights for a
few Adam steps after each new point, so a tell costs about a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import ndtri
from scipy.stats import rankdata

__all__ = ["RewardModel", "encode_actions"]


def encode_actions(space, actions: Sequence[int]) -> np.ndarray:
    """One-hot encoding of an action sequence: a 1 at (slot, action) for each active slot;
    shape ``(space.max_steps * space.max_choices,)``."""
    x = np.zeros(space.max_steps * space.max_choices, dtype=np.float32)
    for slot, action in zip(space.slots_of(actions), actions, strict=True):
        x[slot.index * space.max_choices + action] = 1.0
    return x


def normal_scores(y: np.ndarray) -> np.ndarray:
    """Ranks of `y` (ties averaged) mapped to standard normal quantiles."""
    return ndtri((rankdata(y) - 0.5) / len(y))


class RewardModel:
    """Bootstrap ensemble of one-hidden-layer MLPs, trained together as one batched network.

    Args:
        inputs: Length of the encoding (`encode_actions`).
        members: Networks in the ensemble.
        hidden: Hidden units per network.
        steps: Adam steps after each new point.
        lr: Adam learning rate.
        weight_decay: L2 penalty on the weights (the data is a few hundred points).
        generator: Seeds the initial weights and the bootstrap draws.
    """

    def __init__(
        self,
        inputs: int,
        members: int = 5,
        hidden: int = 32,
        steps: int = 10,
        lr: float = 1e-2,
        weight_decay: float = 1e-3,
        generator: torch.Generator | None = None,
    ):
        self.members, self.steps, self.weight_decay = members, steps, weight_decay
        g = generator or torch.Generator().manual_seed(0)
        self._generator = g
        scale1, scale2 = inputs**-0.5, hidden**-0.5
        self.w1 = (torch.rand(members, inputs, hidden, generator=g) * 2 - 1) * scale1
        self.b1 = torch.zeros(members, 1, hidden)
        self.w2 = (torch.rand(members, hidden, 1, generator=g) * 2 - 1) * scale2
        self.b2 = torch.zeros(members, 1, 1)
        self.params = [self.w1, self.b1, self.w2, self.b2]
        for p in self.params:
            p.requires_grad_(True)
        self.optimizer = torch.optim.Adam(self.params, lr=lr)
        self.x: list[np.ndarray] = []
        self.y: list[float] = []
        self.counts: list[np.ndarray] = []  # each point's bootstrap count in each member

    def __len__(self) -> int:
        return len(self.y)

    def add(self, x: np.ndarray, y: float) -> None:
        """One more told architecture; then `steps` training steps on everything told."""
        self.x.append(np.asarray(x, dtype=np.float32))
        self.y.append(float(y))
        draw = torch.poisson(torch.ones(self.members), generator=self._generator)
        self.counts.append(draw.numpy().astype(np.float32))
        self.train(self.steps)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, inputs) -> (members, n)."""
        h = torch.relu(torch.matmul(x.unsqueeze(0), self.w1) + self.b1)
        return (torch.matmul(h, self.w2) + self.b2).squeeze(2)

    def train(self, steps: int) -> None:
        """`steps` Adam steps on the bootstrap-weighted squared error to the normal scores."""
        if len(self.y) < 2:
            return
        x = torch.from_numpy(np.stack(self.x))
        y = torch.from_numpy(normal_scores(np.asarray(self.y))).float()
        w = torch.from_numpy(np.stack(self.counts, axis=1))  # (members, n)
        w = w / w.sum(1, keepdim=True).clamp_min(1.0)
        for _ in range(steps):
            loss = (w * (self._forward(x) - y) ** 2).sum()
            loss = loss + self.weight_decay * (self.w1.square().sum() + self.w2.square().sum())
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Each member's predicted normal score of each encoding: (members, n)."""
        with torch.no_grad():
            return self._forward(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()

    def pick(
        self, x: Sequence[np.ndarray], generator: torch.Generator | np.random.Generator
    ) -> int:
        """Index of the best of encodings `x` under one member drawn from `generator` (Thompson
        sampling over the ensemble)."""
        if isinstance(generator, np.random.Generator):
            member = int(generator.integers(self.members))
        else:
            member = int(torch.randint(self.members, (), generator=generator))
        return int(np.argmax(self.predict(np.stack(x))[member]))

    def state_dict(self) -> dict:
        return {
            "params": [p.detach().clone() for p in self.params],
            "optimizer": self.optimizer.state_dict(),
            "x": [torch.from_numpy(x) for x in self.x],
            "y": list(self.y),
            "counts": [torch.from_numpy(c) for c in self.counts],
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for p, saved in zip(self.params, state["params"], strict=True):
                p.copy_(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.x = [x.numpy() for x in state["x"]]
        self.y = [float(y) for y in state["y"]]
        self.counts = [c.numpy() for c in state["counts"]]
        self._generator.set_state(state["generator"])
