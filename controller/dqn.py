"""Deep Q-learning over the space's decisions (Mnih et al. 2015, as the course describes it:
Q-learning with a network for the table, a target network and a mean-squared TD loss over
minibatches from a replay buffer; laid out after CleanRL's `dqn.py`).

An architecture is an episode, as in `qlearning`. The observation of a partial architecture
is the one-hot of the action taken in each slot so far (zeros for slots not yet decided or
switched off) followed by the one-hot of the slot being decided:
`max_steps * max_choices + max_steps` numbers. The network maps it to one value per padded
action (`max_choices`); only the legal ones (the space's mask) are ever used: for the argmax
when acting and for the max in the TD target.

Acting is epsilon-greedy, epsilon falling linearly from `start_epsilon` to `end_epsilon` over
the first `exploration` architectures, then staying (CleanRL's linear schedule; ties of the
argmax broken at random). After each reward the architecture's transitions join the replay
buffer (the reward on the last, 0 on the others) and, once the buffer holds `batch`
transitions, `updates` gradient steps of Adam are taken on

    loss = mean over a minibatch of (r + discount * (1 - done) * max_{a' legal} Q_target(s', a')
                                     - Q(s, a))**2

with the target network copied from the online one every `target_every` steps.

With `rank_samples` > 1, once `rank_after` rewards are told, each ask draws that many distinct
unasked epsilon-greedy architectures side by side (one pass of the network per decision) and
proposes the one a reward model ranks first (`controller.ranking`, as in `reinforce`).

Failed children (reward None, NaN or +-inf) get the worst reward seen so far, as in
`reinforce` and `qlearning`; a failure before any finite reward is skipped (`skipped`).

Defaults: CleanRL's Atari/classic-control settings (buffer 10k, batch 128, lr 2.5e-4, target
every 500 steps) are made for 10^5-10^6 environment steps; a search here has 50-500 episodes
of 5-26 steps. So the buffer holds every transition of such a search, the batch is smaller and
the learning rate higher, several updates follow each reward, the target is synced every few
rewards, and epsilon falls over the first hundred or so architectures (`DQNOptions`); ranked
proposals were chosen by leave-one-table-out on the shipped tables (benchmarks/loto.py).
Measured: benchmarks/RESULTS.md#dqn.
Torch runs on one thread inside ask and tell (`one_thread`): for a network this small that
is several times faster, and on a busy machine more threads mostly wait for each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from controller.base import Candidate, Controller, worst_for_failed
from controller.ranking import Ranker, check_rank_options
from controller.registry import register_controller

RANK_RETRIES = 10
"""Draws past `rank_samples` while fewer are distinct and unasked (as `qlearning`'s resample)."""


@dataclass
class DQNOptions:
    """Options of the `dqn` controller."""

    lr: float = 1e-3
    """Adam learning rate of the Q-network."""
    hidden: int = 64
    """Units of each of the Q-network's two hidden layers."""
    discount: float = 1.0
    """Discount gamma between decisions (the only reward is the last)."""
    buffer: int = 10_000
    """Replay buffer capacity in transitions (one per decision); the oldest go first."""
    batch: int = 64
    """Transitions per minibatch; learning starts once the buffer holds this many."""
    updates: int = 8
    """Gradient steps after each reward."""
    target_every: int = 25
    """Gradient steps between copies of the online network into the target network."""
    start_epsilon: float = 1.0
    """Epsilon of the first architecture."""
    end_epsilon: float = 0.05
    """Epsilon once the exploration phase is over."""
    exploration: int = 100
    """Architectures over which epsilon falls linearly from start to end."""
    rank_samples: int = 16
    """Draw this many distinct unasked epsilon-greedy architectures and propose the one a reward
    model ranks first (`controller.ranking`; 0 or 1: off, the plain DQN's proposals; see
    benchmarks/RESULTS.md#ranked-proposals-for-q-learning-and-dqn)."""
    rank_after: int = 4
    """Rewards told before proposals are ranked (until then: one draw)."""
    rank_neighbours: int = 2
    """The one-decision neighbours of this many of the best told join the ranked draws."""

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.discount <= 1:
            raise ValueError(f"discount must be in [0, 1], got {self.discount}")
        for name in ("hidden", "buffer", "batch", "updates", "target_every", "exploration"):
            value = getattr(self, name)
            if int(value) != value or value < (0 if name == "updates" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value}")
            setattr(self, name, int(value))
        for name in ("start_epsilon", "end_epsilon"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        check_rank_options(self)


def _same(actions: list[int]) -> list[int]:
    """A draw is its own action sequence."""
    return actions


class QNetwork(nn.Module):
    """observation (B, D) -> one value per padded action (B, max_choices)."""

    def __init__(self, obs_size: int, max_choices: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_size, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, max_choices),
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside (restored after): a network this small is several times
    faster so, and more threads only contend with the children training beside it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@register_controller("dqn")
class DQN(Controller):
    """Epsilon-greedy deep Q-learning with a target network; see the module docstring."""

    Options = DQNOptions

    def __init__(self, space, seed: int = 0, **options) -> None:
        super().__init__(space, seed=seed, **options)
        self._build()
        self._worst: float | None = None
        self._skipped = 0
        self._stats = {"loss": 0.0, "updates": 0.0}
        self._explored = 0  # architectures a warm start's source asked (epsilon goes on)
        self._asked: set[tuple[int, ...]] = set()  # every architecture asked (for ranking)
        self._history: list[tuple[float, list[int]]] = []  # (reward, actions), told order

    def _build(self) -> None:
        o, S, K = self.options, self.space.max_steps, self.space.max_choices
        self._rng = np.random.default_rng(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        self._obs_size = S * K + S
        self.q_network = QNetwork(self._obs_size, K, o.hidden)
        with torch.no_grad():  # PyTorch's default init, drawn from our own generator
            for layer in self.q_network.net:
                if isinstance(layer, nn.Linear):
                    bound = layer.in_features**-0.5
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
        self.target_network = QNetwork(self._obs_size, K, o.hidden)
        self.target_network.load_state_dict(self.q_network.state_dict())
        self.optimizer = torch.optim.Adam(self.q_network.parameters(), lr=o.lr)
        # the replay buffer: a ring of `buffer` transitions (numpy: cheap to write one at a time)
        self._obs = np.zeros((o.buffer, self._obs_size), dtype=bool)
        self._next_obs = np.zeros((o.buffer, self._obs_size), dtype=bool)
        self._next_mask = np.zeros((o.buffer, K), dtype=bool)
        self._actions = np.zeros(o.buffer, dtype=np.int64)
        self._rewards = np.zeros(o.buffer, dtype=np.float32)
        self._dones = np.zeros(o.buffer, dtype=np.float32)
        self._size = self._cursor = 0
        self._ranker = Ranker(
            self.space, self.seed, o.rank_samples, o.rank_neighbours, o.rank_after
        )

    @property
    def epsilon(self) -> float:
        o = self.options
        fraction = (self._explored + self._next_id) / o.exploration
        if fraction >= 1:
            return o.end_epsilon
        return o.start_epsilon + fraction * (o.end_epsilon - o.start_epsilon)

    def _observe(self, taken: dict[int, int], slot: int | None) -> np.ndarray:
        """Observation of a partial architecture: {slot index: action} and the current slot
        (None once complete)."""
        K = self.space.max_choices
        obs = np.zeros(self._obs_size, dtype=bool)
        for s, a in taken.items():
            obs[s * K + a] = True
        if slot is not None:
            obs[self.space.max_steps * K + slot] = True
        return obs

    # -- ask ----------------------------------------------------------------------------------

    def ask(self) -> Candidate:
        epsilon = self.epsilon
        if self._ranker.ready:
            queue: list[list[int]] = []

            def draw(_: int) -> list[int]:
                if not queue:
                    queue.extend(self._draws(epsilon, self._ranker.samples))
                return queue.pop(0)

            actions = self._ranker.propose(
                draw, _same, _same, self._asked, RANK_RETRIES, self._history, self._rng
            )
        else:
            actions = self._sample(epsilon)
            self._asked.add(tuple(actions))
        return self._candidate(actions, epsilon=epsilon)

    def _sample(self, epsilon: float) -> list[int]:
        """One epsilon-greedy action sequence (one pass of the network per greedy decision)."""
        rng = self._rng
        actions: list[int] = []
        taken: dict[int, int] = {}
        while (slot := self.space.next_slot(actions)) is not None:
            n = len(slot.choices)  # the legal actions are 0 .. n - 1
            if rng.random() < epsilon:
                a = int(rng.integers(n))
            else:
                with torch.no_grad(), one_thread():
                    obs = torch.from_numpy(self._observe(taken, slot.index)).float()
                    values = self.q_network(obs)[:n]
                ties = torch.nonzero(values == values.max()).flatten().tolist()
                a = ties[int(rng.integers(len(ties)))] if len(ties) > 1 else ties[0]
            actions.append(a)
            taken[slot.index] = a
        return actions

    def _draws(self, epsilon: float, count: int) -> list[list[int]]:
        """`count` epsilon-greedy action sequences drawn side by side: one pass of the network
        per decision for all of them."""
        rng, K, S = self._rng, self.space.max_choices, self.space.max_steps
        walks = [self.space.walk() for _ in range(count)]
        slots = [walk.next_slot() for walk in walks]
        actions: list[list[int]] = [[] for _ in range(count)]
        obs = np.zeros((count, self._obs_size), dtype=np.float32)
        while live := [i for i, slot in enumerate(slots) if slot is not None]:
            explore = rng.random(len(live)) < epsilon
            greedy = [i for i, e in zip(live, explore, strict=True) if not e]
            if greedy:
                obs[greedy, S * K :] = 0.0
                for i in greedy:
                    obs[i, S * K + slots[i].index] = 1.0
                with torch.no_grad(), one_thread():
                    values = self.q_network(torch.from_numpy(obs[greedy])).numpy()
                row = dict(zip(greedy, values, strict=True))
            for i, e in zip(live, explore, strict=True):
                slot = slots[i]
                n = len(slot.choices)
                if e:
                    a = int(rng.integers(n))
                else:
                    v = row[i][:n]
                    ties = np.flatnonzero(v == v.max())
                    a = int(ties[rng.integers(len(ties))]) if len(ties) > 1 else int(ties[0])
                actions[i].append(a)
                obs[i, slot.index * K + a] = 1.0
                walks[i].take(a)
                slots[i] = walks[i].next_slot()
        return actions

    # -- tell and learn -----------------------------------------------------------------------

    def tell(self, candidate: Candidate, reward: float | None) -> None:
        candidate = self._settle(candidate)
        reward, self._worst = worst_for_failed(reward, self._worst)
        if reward is None:
            self._skipped += 1
            return
        self._store(list(candidate.actions), reward)
        self._history.append((reward, list(candidate.actions)))
        self._ranker.tell(candidate.actions, reward)
        if self._size >= self.options.batch:
            with one_thread():
                for _ in range(self.options.updates):
                    self._update()

    def _store(self, actions: list[int], reward: float) -> None:
        """Add an architecture's transitions to the replay buffer."""
        taken: dict[int, int] = {}
        slot = self.space.next_slot([])
        for t, a in enumerate(actions):
            obs = self._observe(taken, slot.index)
            taken[slot.index] = a
            next_slot = self.space.next_slot(actions[: t + 1])
            done = next_slot is None
            i = self._cursor
            self._obs[i] = obs
            self._actions[i] = a
            self._rewards[i] = reward if done else 0.0
            self._dones[i] = float(done)
            self._next_obs[i] = self._observe(taken, None if done else next_slot.index)
            self._next_mask[i] = self.space.action_mask(actions[: t + 1])
            self._cursor = (i + 1) % self.options.buffer
            self._size = min(self._size + 1, self.options.buffer)
            slot = next_slot

    def _update(self) -> None:
        """One gradient step on a minibatch drawn uniformly from the buffer."""
        o = self.options
        idx = self._rng.integers(self._size, size=o.batch)
        obs, next_obs, next_mask, actions, rewards, dones = (
            torch.from_numpy(x[idx])
            for x in (self._obs, self._next_obs, self._next_mask, self._actions)
            + (self._rewards, self._dones)
        )
        with torch.no_grad():
            next_q = self.target_network(next_obs.float()).masked_fill(~next_mask, -torch.inf)
            next_max = next_q.max(dim=1).values.nan_to_num(0.0, neginf=0.0)  # done: no slot
            target = rewards + o.discount * (1 - dones) * next_max
        value = self.q_network(obs.float()).gather(1, actions.unsqueeze(1)).squeeze(1)
        loss = F.mse_loss(value, target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self._stats["loss"] = float(loss.detach())
        self._stats["updates"] += 1
        if self._stats["updates"] % o.target_every == 0:
            self.target_network.load_state_dict(self.q_network.state_dict())

    # -- state and stats ----------------------------------------------------------------------

    def _state_dict(self) -> dict:
        n = self._size
        return {
            "q_network": self.q_network.state_dict(),
            "target_network": self.target_network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": {
                "obs": torch.from_numpy(self._obs[:n].copy()),
                "next_obs": torch.from_numpy(self._next_obs[:n].copy()),
                "next_mask": torch.from_numpy(self._next_mask[:n].copy()),
                "actions": torch.from_numpy(self._actions[:n].copy()),
                "rewards": torch.from_numpy(self._rewards[:n].copy()),
                "dones": torch.from_numpy(self._dones[:n].copy()),
                "cursor": self._cursor,
            },
            "rng": self._rng.bit_generator.state,
            "worst": self._worst,
            "skipped": self._skipped,
            "stats": dict(self._stats),
            "explored": self._explored,
            "asked": [list(actions) for actions in sorted(self._asked)],
            "history": [[reward, list(actions)] for reward, actions in self._history],
            "reward_model": self._ranker.state_dict(),
        }

    def _load_state_dict(self, state: dict) -> None:
        self._build()  # the options may differ from the ones this controller was built with
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])
        self.optimizer.load_state_dict(state["optimizer"])
        buffer = state["buffer"]
        n = len(buffer["actions"])
        for name in ("obs", "next_obs", "next_mask", "actions", "rewards", "dones"):
            getattr(self, f"_{name}")[:n] = buffer[name].numpy()
        self._size, self._cursor = n, int(buffer["cursor"])
        self._rng.bit_generator.state = state["rng"]
        self._worst = None if state["worst"] is None else float(state["worst"])
        self._skipped = int(state["skipped"])
        self._stats = {k: float(v) for k, v in state["stats"].items()}
        self._explored = int(state.get("explored", 0))
        self._asked = {tuple(int(a) for a in actions) for actions in state.get("asked", [])}
        self._history = [
            (float(r), [int(a) for a in actions]) for r, actions in state.get("history", [])
        ]
        if "reward_model" in state:
            self._ranker.load_state_dict(state["reward_model"])

    def _warm_start(self, state: dict, shared) -> str:
        """The Q-network's weights, for the target network too: the hidden layers whole, the
        input columns of the shared decisions and choices, and the output of each action index
        that means the same choice in every shared decision (the rest keep their initial
        weights); epsilon goes on from the architectures the source asked. The replay buffer
        (rewards of another search), optimiser and RNG are not carried."""
        source = state["algorithm"]["q_network"]
        hidden = int(source["net.0.weight"].shape[0])
        if hidden != self.options.hidden:
            raise ValueError(
                f"the saved Q-network has {hidden} hidden units, this one {self.options.hidden} "
                "(option hidden)"
            )
        weights = {k: v.detach().clone() for k, v in self.q_network.state_dict().items()}
        for key in ("net.0.bias", "net.2.weight", "net.2.bias"):
            weights[key] = source[key].clone()
        S, K = self.space.max_steps, self.space.max_choices
        s_steps, k = shared.source.max_steps, shared.source.max_choices
        ours, theirs = weights["net.0.weight"], source["net.0.weight"]
        for t_slot, t_choice, s_slot, s_choice in shared.pairs():  # (slot, action) one-hots
            ours[:, t_slot * K + t_choice] = theirs[:, s_slot * k + s_choice]
        for t_slot, s_slot in shared.slots.items():  # the slot being decided
            ours[:, S * K + t_slot] = theirs[:, s_steps * k + s_slot]
        for action in range(min(K, k)):
            if all(
                shared.choices[t].get(action) == action
                for t in shared.slots
                if action < len(self.space.slots[t].choices)
            ):
                weights["net.4.weight"][action] = source["net.4.weight"][action]
                weights["net.4.bias"][action] = source["net.4.bias"][action]
        self.q_network.load_state_dict(weights)
        self.target_network.load_state_dict(weights)
        self._explored = int(state["next_id"]) + int(state["algorithm"].get("explored", 0))
        return f"its Q-network (epsilon as after its {self._explored} architectures)"

    def stats(self) -> dict[str, float]:
        """Counters plus epsilon, the last TD loss, gradient steps, buffer size, skipped."""
        return {
            **super().stats(),
            **self._stats,
            "epsilon": self.epsilon,
            "buffer": float(self._size),
            "skipped": float(self._skipped),
        }
