"""A reward model learned from the architectures told so far: a small bootstrap ensemble of
MLPs over the one-hot action encoding (as BANANAS's predictor, White et al. 2021).

Controllers use it to rank several of their own proposals and train only the most promising
one: each member is trained on its own bootstrap resample of the told architectures, so the
members disagree where data is scarce, and picking the best proposal under one member drawn at
random (Thompson sampling) explores where the ensemble is unsure.

Targets are the rewards' normal scores (ranks mapped through the inverse normal CDF), so the
model sees the same scale whatever the reward's units and however skewed (a few failed
children at 0.1 beside accuracies of 0.97). Training continues from the current weights for a
few Adam steps after each new point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import ndtri

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
    from scipy.stats import rankdata  # 0.7 s to import: only once a model is fitted

    return ndtri((rankdata(y) - 0.5) / len(y))


class RewardModel:
    """Bootstrap ensemble of one-hidden-layer MLPs, trained together as one batched network
    (in numpy, gradients by hand; the same steps as torch's Adam to float precision).

    Args:
        inputs: Length of the encoding (`encode_actions`).
        members: Networks in the ensemble.
        hidden: Hidden units per network.
        steps: Adam steps after each new point.
        lr: Adam learning rate.
        weight_decay: L2 penalty on the weights (the data is a few hundred points).
        generator: Seeds the initial weights and the bootstrap draws.
    """

    BETAS = (0.9, 0.999)
    EPS = 1e-8

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
        self.members, self.steps, self.weight_decay, self.lr = members, steps, weight_decay, lr
        g = generator or torch.Generator().manual_seed(0)
        self._generator = g
        scale1, scale2 = inputs**-0.5, hidden**-0.5
        w1 = (torch.rand(members, inputs, hidden, generator=g) * 2 - 1) * scale1
        w2 = (torch.rand(members, hidden, 1, generator=g) * 2 - 1) * scale2
        self.params = [  # w1, b1, w2, b2
            w1.numpy(),
            np.zeros((members, 1, hidden), dtype=np.float32),
            w2.numpy(),
            np.zeros((members, 1, 1), dtype=np.float32),
        ]
        self._m = [np.zeros_like(p) for p in self.params]  # Adam's moments
        self._v = [np.zeros_like(p) for p in self.params]
        self._step = 0
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

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, inputs) -> hidden activations (members, n, hidden), outputs (members, n)."""
        w1, b1, w2, b2 = self.params
        h = np.maximum(np.matmul(x, w1) + b1, 0.0)
        return h, (np.matmul(h, w2) + b2)[:, :, 0]

    def train(self, steps: int) -> None:
        """`steps` Adam steps on the bootstrap-weighted squared error to the normal scores."""
        if len(self.y) < 2:
            return
        x = np.stack(self.x)
        y = normal_scores(np.asarray(self.y)).astype(np.float32)
        w = np.stack(self.counts, axis=1)  # (members, n)
        w = w / np.maximum(w.sum(1, keepdims=True), 1.0)
        (b1_, b2_), decay = self.BETAS, self.weight_decay
        for _ in range(steps):
            w1, _, w2, _ = self.params
            h, out = self._forward(x)
            d_out = 2 * w * (out - y)  # (members, n)
            d_h = d_out[:, :, None] * w2[:, :, 0][:, None, :] * (h > 0)  # (members, n, hidden)
            grads = [
                np.matmul(x.T, d_h) + 2 * decay * w1,
                d_h.sum(1, keepdims=True),
                np.matmul(h.transpose(0, 2, 1), d_out[:, :, None]) + 2 * decay * w2,
                d_out.sum(1)[:, None, None],
            ]
            self._step += 1
            correct1, correct2 = 1 - b1_**self._step, 1 - b2_**self._step
            for p, g, m, v in zip(self.params, grads, self._m, self._v, strict=True):
                m *= b1_
                m += (1 - b1_) * g
                v *= b2_
                v += (1 - b2_) * g * g
                p -= (self.lr / correct1) * m / (np.sqrt(v / correct2) + self.EPS)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Each member's predicted normal score of each encoding: (members, n)."""
        return self._forward(np.asarray(x, dtype=np.float32))[1]

    def pick(
        self,
        x: Sequence[np.ndarray],
        generator: torch.Generator | np.random.Generator,
        kappa: float | None = None,
    ) -> int:
        """Index of the best of encodings `x` under one member drawn from `generator` (Thompson
        sampling over the ensemble); with `kappa`, the best by the members' mean plus `kappa`
        times their standard deviation (an upper confidence bound; nothing drawn)."""
        if kappa is not None:
            scores = self.predict(np.stack(x))
            return int(np.argmax(scores.mean(0) + kappa * scores.std(0)))
        if isinstance(generator, np.random.Generator):
            member = int(generator.integers(self.members))
        else:
            member = int(torch.randint(self.members, (), generator=generator))
        w1, b1, w2, b2 = (p[member] for p in self.params)
        h = np.maximum(np.stack(x) @ w1 + b1, 0.0)
        return int(np.argmax(h @ w2[:, 0] + b2[0]))

    def state_dict(self) -> dict:
        return {
            "params": [torch.from_numpy(p.copy()) for p in self.params],
            "adam": {
                "m": [torch.from_numpy(m.copy()) for m in self._m],
                "v": [torch.from_numpy(v.copy()) for v in self._v],
                "step": self._step,
            },
            "x": [torch.from_numpy(x) for x in self.x],
            "y": list(self.y),
            "counts": [torch.from_numpy(c) for c in self.counts],
            "generator": self._generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.params = [p.detach().numpy().astype(np.float32) for p in state["params"]]
        if "adam" in state:
            adam = state["adam"]
            self._m = [m.numpy().astype(np.float32) for m in adam["m"]]
            self._v = [v.numpy().astype(np.float32) for v in adam["v"]]
            self._step = int(adam["step"])
        else:  # saved when the model was trained with torch's Adam
            moments = [state["optimizer"]["state"].get(i, {}) for i in range(len(self.params))]
            zeros = [np.zeros_like(p) for p in self.params]
            self._m = [
                m["exp_avg"].numpy() if m else z for m, z in zip(moments, zeros, strict=True)
            ]
            self._v = [
                m["exp_avg_sq"].numpy() if m else z.copy()
                for m, z in zip(moments, zeros, strict=True)
            ]
            self._step = int(moments[0]["step"]) if moments[0] else 0
        self.x = [x.numpy() for x in state["x"]]
        self.y = [float(y) for y in state["y"]]
        self.counts = [c.numpy() for c in state["counts"]]
        self._generator.set_state(state["generator"])
