"""Tabular Q-learning over the space's decisions (MetaQNN, Baker et al. 2017).

An architecture is an episode: at each step the state is (the slot being decided, the slot
decided just before it, the action taken there), the action is one of the slot's choices, and
the only reward is the child's, on the last transition. The slot index already says which
layer and which decision of a layer is being made (the space is unrolled), and the previous
slot tells a skipped `when` decision apart from a taken one; the Q-table is dense over these
states, `max_steps * (max_steps + 1) * (max_choices + 1)` rows of `max_choices` values.

Actions are epsilon-greedy: with probability epsilon a uniformly random legal action, else the
argmax of Q over the legal actions only (ties broken at random). Epsilon follows a staged
schedule, a list of (epsilon, architectures) pairs; after the last stage its epsilon stays.
An architecture asked before is drawn again, up to `resample` times: once the greedy path
settles, about half the asks at epsilon 0.1 would otherwise repeat it, paying a child for a
reward already known (MetaQNN looked a repeat's accuracy up instead of training it again).

After each reward the trajectory is learned from and joins the replay memory, then `replay`
trajectories drawn uniformly from the memory (the new one included) are replayed; each
learning pass goes from the last transition back to the first with

    Q(s_T, a_T) <- (1 - lr) Q(s_T, a_T) + lr * r
    Q(s_t, a_t) <- (1 - lr) Q(s_t, a_t) + lr * discount * max_{a' legal in s_t+1} Q(s_t+1, a')

(MetaQNN: lr 0.01, discount 1, initial Q 0.5, 128 replays per reward.)

With `rank_samples` > 1, once `rank_after` rewards are told, each ask draws that many distinct
unasked epsilon-greedy architectures and proposes the one a reward model ranks first
(`controller.ranking`, as in `reinforce`); the Q-values learn from every reward as above.

Failed children (reward None, NaN or +-inf) get the worst reward seen so far, as in
`reinforce`; a failure before any finite reward is skipped (counted in `skipped`).

The defaults, and why
---------------------
MetaQNN trained 2,700 children on SVHN with epsilon 1.0 for more than half of them; searches
here train 50-500, so the schedule is compressed to the budget: a short random stage (random
exploration fills the replay memory and corrects the initial Q-values along many paths), then a
small epsilon for the rest. With repeats resampled, the greedy phase is a local search around
the best path found so far that the Q-values keep moving, and a learning rate well above
MetaQNN's lets them follow the rewards within a few hundred children. A different budget is one
option away, e.g. `schedule=[[1.0, 150], [0.5, 100], [0.1, 250]]`. Chosen on the toy objective
of tests/controller/test_toys.py, then on the tabular benchmarks; every schedule and option
tried, with figures: benchmarks/RESULTS.md#q-learning. Ranked proposals, `replay_best` and
`ucb` were chosen (or not) by leave-one-table-out on the shipped tables (benchmarks/loto.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from controller.base import Candidate, Controller, draw_unasked, worst_for_failed
from controller.ranking import Ranker, check_rank_options
from controller.registry import register_controller


def _default_schedule() -> list[list[float]]:
    return [[1.0, 15], [0.1, 1]]


@dataclass
class QLearningOptions:
    """Options of the `qlearning` controller."""

    lr: float = 0.1
    """Q-learning rate alpha (MetaQNN: 0.01, too slow for 50-500 children; see
    benchmarks/RESULTS.md#q-learning)."""
    discount: float = 1.0
    """Discount gamma between decisions (MetaQNN: 1; the only reward is the last)."""
    initial_q: float = 0.5
    """Initial value of every Q(s, a) (MetaQNN: 0.5; optimistic for rewards below it)."""
    replay: int = 128
    """Trajectories replayed from memory after each reward (MetaQNN: 128)."""
    schedule: list[list[float]] = field(default_factory=_default_schedule)
    """Epsilon stages [[epsilon, architectures], ...]; the last epsilon then stays."""
    resample: int = 10
    """When an architecture asked before comes out, draw again, up to this many times (a
    repeat costs a child and teaches nothing; MetaQNN, 0, looked repeats up instead)."""
    replay_best: int = 0
    """After each reward, also replay the trajectories of this many of the best distinct
    architectures told (0: off)."""
    ucb: float = 0.0
    """Count-based exploration: the greedy action maximises Q(s, a) + ucb * (std of the rewards)
    * sqrt(log(1 + n(s)) / (1 + n(s, a))), n counting the told architectures that took it
    (0: plain greedy)."""
    rank_samples: int = 16
    """Draw this many distinct unasked epsilon-greedy architectures and propose the one a reward
    model ranks first (`controller.ranking`; 0 or 1: off, MetaQNN's proposals; see
    benchmarks/RESULTS.md#ranked-proposals-for-q-learning-and-dqn)."""
    rank_after: int = 4
    """Rewards told before proposals are ranked (until then: one draw)."""
    rank_neighbours: int = 2
    """The one-decision neighbours of this many of the best told join the ranked draws."""

    def __post_init__(self) -> None:
        if not 0 < self.lr <= 1:
            raise ValueError(f"lr must be in (0, 1], got {self.lr}")
        if not 0 <= self.discount <= 1:
            raise ValueError(f"discount must be in [0, 1], got {self.discount}")
        if int(self.replay) != self.replay or self.replay < 0:
            raise ValueError(f"replay must be an integer >= 0, got {self.replay}")
        if int(self.resample) != self.resample or self.resample < 0:
            raise ValueError(f"resample must be an integer >= 0, got {self.resample}")
        if int(self.replay_best) != self.replay_best or self.replay_best < 0:
            raise ValueError(f"replay_best must be an integer >= 0, got {self.replay_best}")
        if not self.ucb >= 0:
            raise ValueError(f"ucb must be >= 0, got {self.ucb}")
        self.replay_best = int(self.replay_best)
        self.replay, self.resample = int(self.replay), int(self.resample)
        self.schedule = check_schedule(self.schedule)
        check_rank_options(self)


def _same(actions: list[int]) -> list[int]:
    """A draw is its own action sequence."""
    return actions


def check_schedule(schedule) -> list[list[float]]:
    """Validate an epsilon schedule [[epsilon, count], ...] and return it as plain lists."""
    out = []
    for stage in schedule:
        epsilon, count = stage
        if not 0 <= epsilon <= 1 or int(count) != count or count < 1:
            raise ValueError(f"schedule stages are [epsilon in [0, 1], count >= 1], got {stage}")
        out.append([float(epsilon), int(count)])
    if not out:
        raise ValueError("schedule needs at least one [epsilon, count] stage")
    return out


def staged_epsilon(schedule: list[list[float]], asked: int) -> float:
    """Epsilon for the architecture asked after `asked` others."""
    remaining: float = asked
    for epsilon, count in schedule:
        if remaining < count:
            return epsilon
        remaining -= count
    return schedule[-1][0]


@register_controller("qlearning")
class QLearning(Controller):
    """MetaQNN's epsilon-greedy tabular Q-learning; see the module docstring."""

    Options = QLearningOptions

    def __init__(self, space, seed: int = 0, **options) -> None:
        super().__init__(space, seed=seed, **options)
        self._rng = np.random.default_rng(self.seed)
        S, K = space.max_steps, space.max_choices
        self._shape = (S, S + 1, K + 1)  # (slot, previous slot + 1, previous action + 1)
        self._q = [self.options.initial_q] * (S * (S + 1) * (K + 1) * K)  # a list: fast scalars
        self._memory: list[tuple[list[int], list[int], list[int], float]] = []
        self._counts = [0] * len(self._q)  # told architectures that took each (state, action)
        self._worst: float | None = None
        self._skipped = 0
        self._asked: set[tuple[int, ...]] = set()
        self._explored = 0  # architectures a warm start's source asked (the schedule goes on)
        o = self.options
        self._ranker = Ranker(space, self.seed, o.rank_samples, o.rank_neighbours, o.rank_after)

    def _state(self, slot: int, prev_slot: int, prev_action: int) -> int:
        """Offset of a state's row in the flat Q-table (-1 = no previous decision)."""
        _, P, A = self._shape
        return ((slot * P + prev_slot + 1) * A + prev_action + 1) * self.space.max_choices

    @property
    def epsilon(self) -> float:
        return staged_epsilon(self.options.schedule, self._explored + self._next_id)

    # -- ask ----------------------------------------------------------------------------------

    def ask(self) -> Candidate:
        epsilon, retries = self.epsilon, self.options.resample
        if self._ranker.ready:
            history = [(reward, actions) for _, _, actions, reward in self._memory]
            actions = self._ranker.propose(
                lambda _: self._sample(epsilon),
                _same,
                _same,
                self._asked,
                retries,
                history,
                self._rng,
            )
        else:
            actions = draw_unasked(lambda _: self._sample(epsilon), list, self._asked, retries)
        return self._candidate(actions, epsilon=epsilon)

    def _sample(self, epsilon: float) -> list[int]:
        """One epsilon-greedy action sequence."""
        q, rng, counts = self._q, self._rng, self._counts
        bonus = self.options.ucb * self._reward_std() if self.options.ucb else 0.0
        actions: list[int] = []
        prev_slot = prev_action = -1
        walk = self.space.walk()
        while (slot := walk.next_slot()) is not None:
            n = len(slot.choices)  # the legal actions are 0 .. n - 1
            if rng.random() < epsilon:
                a = int(rng.integers(n))
            else:
                row = self._state(slot.index, prev_slot, prev_action)
                values = q[row : row + n]
                if bonus:
                    seen = counts[row : row + n]
                    log_n = math.log(1 + sum(seen))
                    values = [
                        v + bonus * math.sqrt(log_n / (1 + c))
                        for v, c in zip(values, seen, strict=True)
                    ]
                best = max(values)
                ties = [i for i, v in enumerate(values) if v == best]
                a = ties[int(rng.integers(len(ties)))] if len(ties) > 1 else ties[0]
            actions.append(a)
            walk.take(a)
            prev_slot, prev_action = slot.index, a
        return actions

    # -- tell and learn -----------------------------------------------------------------------

    def tell(self, candidate: Candidate, reward: float | None) -> None:
        candidate = self._settle(candidate)
        reward, self._worst = worst_for_failed(reward, self._worst)
        if reward is None:
            self._skipped += 1
            return
        self._memory.append((*self._trajectory(candidate.actions), reward))
        self._ranker.tell(candidate.actions, reward)
        rows, _, actions, _ = self._memory[-1]
        for row, a in zip(rows, actions, strict=True):
            self._counts[row + a] += 1
        self._update(*self._memory[-1])  # learn from the new trajectory, then replay
        for i in self._rng.integers(len(self._memory), size=self.options.replay):
            self._update(*self._memory[i])
        for trajectory in self._best(self.options.replay_best):
            self._update(*trajectory)

    def _best(self, k: int) -> list[tuple[list[int], list[int], list[int], float]]:
        """The trajectories of the `k` best distinct architectures told (earlier first on ties)."""
        out, seen = [], set()
        for trajectory in sorted(self._memory, key=lambda m: -m[3]) if k else []:
            if tuple(trajectory[2]) not in seen:
                seen.add(tuple(trajectory[2]))
                out.append(trajectory)
                if len(out) == k:
                    break
        return out

    def _reward_std(self) -> float:
        """Standard deviation of the rewards told (0 before two)."""
        return float(np.std([m[3] for m in self._memory])) if len(self._memory) > 1 else 0.0

    def _trajectory(self, actions) -> tuple[list[int], list[int], list[int]]:
        """Q-table rows, legal action counts and actions of an architecture's decisions."""
        rows, sizes = [], []
        prev_slot = prev_action = -1
        for slot, a in zip(self.space.slots_of(actions), actions, strict=True):
            rows.append(self._state(slot.index, prev_slot, prev_action))
            sizes.append(len(slot.choices))
            prev_slot, prev_action = slot.index, int(a)
        return rows, sizes, [int(a) for a in actions]

    def _update(self, rows: list[int], sizes: list[int], actions: list[int], reward: float):
        """One backward pass of Q-learning updates over a trajectory."""
        q, lr, gamma = self._q, self.options.lr, self.options.discount
        target = reward  # the last transition's
        for t in range(len(rows) - 1, -1, -1):
            i = rows[t] + actions[t]
            q[i] += lr * (target - q[i])
            if t:  # the target of the transition before: the best legal value here
                target = gamma * max(q[rows[t] : rows[t] + sizes[t]])

    # -- state and stats ----------------------------------------------------------------------

    def _state_dict(self) -> dict:
        return {
            "q": torch.tensor(self._q, dtype=torch.float64),
            "memory": [[list(r), list(s), list(a), w] for r, s, a, w in self._memory],
            "rng": self._rng.bit_generator.state,
            "worst": self._worst,
            "skipped": self._skipped,
            "asked": [list(actions) for actions in sorted(self._asked)],
            "explored": self._explored,
            "reward_model": self._ranker.state_dict(),
        }

    def _load_state_dict(self, state: dict) -> None:
        self._q = [float(v) for v in state["q"].tolist()]
        self._memory = [
            ([int(x) for x in r], [int(x) for x in s], [int(x) for x in a], float(w))
            for r, s, a, w in state["memory"]
        ]
        self._counts = [0] * len(self._q)
        for rows, _, actions, _ in self._memory:
            for row, a in zip(rows, actions, strict=True):
                self._counts[row + a] += 1
        self._rng.bit_generator.state = state["rng"]
        self._worst = None if state["worst"] is None else float(state["worst"])
        self._skipped = int(state["skipped"])
        self._asked = {tuple(int(a) for a in actions) for actions in state.get("asked", [])}
        self._explored = int(state.get("explored", 0))
        o = self.options  # the options may differ from the ones this controller was built with
        self._ranker = Ranker(
            self.space, self.seed, o.rank_samples, o.rank_neighbours, o.rank_after
        )
        if "reward_model" in state:
            self._ranker.load_state_dict(state["reward_model"])

    def _warm_start(self, state: dict, shared) -> str:
        """The Q-values of every state and action the shared decisions and choices make up
        (the others keep `initial_q`), and the epsilon schedule goes on from the architectures
        the source asked: a schedule restarted at epsilon 1 would ignore the Q-values it was
        given. The replay memory (rewards of another search) and the RNG are not carried."""
        source = state["algorithm"]
        S, K = shared.source.max_steps, shared.source.max_choices
        theirs = np.asarray(source["q"].tolist(), dtype=float).reshape(S, S + 1, K + 1, K)
        ours = np.asarray(self._q).reshape(*self._shape, self.space.max_choices)
        before = [(-1, -1, {-1: -1}), *((t, s, shared.choices[t]) for t, s in shared.slots.items())]
        for t_slot, s_slot in shared.slots.items():
            t_actions = np.asarray(list(shared.choices[t_slot]))
            s_actions = np.asarray(list(shared.choices[t_slot].values()))
            for t_prev, s_prev, prev_choices in before:  # the previous decision and action
                t_rows = np.asarray(list(prev_choices)) + 1
                s_rows = np.asarray(list(prev_choices.values())) + 1
                ours[t_slot, t_prev + 1][np.ix_(t_rows, t_actions)] = theirs[s_slot, s_prev + 1][
                    np.ix_(s_rows, s_actions)
                ]
        self._q = ours.ravel().tolist()
        self._explored = int(state["next_id"]) + int(source.get("explored", 0))
        return f"its Q-values (epsilon as after its {self._explored} architectures)"

    def stats(self) -> dict[str, float]:
        """Counters plus the current epsilon, the replay memory's size and skipped failures."""
        return {
            **super().stats(),
            "epsilon": self.epsilon,
            "memory": float(len(self._memory)),
            "skipped": float(self._skipped),
        }
