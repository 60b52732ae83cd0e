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

Failed children (reward None, NaN or +-inf) get the worst reward seen so far, as in
`reinforce`; a failure before any finite reward is skipped (counted in `skipped`).

The defaults, and why
---------------------
MetaQNN trained 2,700 children on SVHN: epsilon 1.0 for 1,500 (56 %), then 0.9, 0.8, 0.7 for
100 each and 0.6 ... 0.1 for 150 each. Searches here train 50-500 children, so the schedule
is compressed to the budget: 1.0 for 15 architectures (random exploration fills the replay
memory and corrects the initial 0.5 along many paths), then 0.1 for the rest. With repeats
resampled, the greedy phase proposes the best path found so far with about one decision in
ten redrawn: a local search around the incumbent that the Q-values keep moving. A different
budget is one option away, e.g. `schedule=[[1.0, 150], [0.5, 100], [0.1, 250]]`. How the
defaults were reached (the earlier default schedule was 1.0 for 30, then 0.9 ... 0.1 for 7 or
8 each):

Measured on the toy objective of tests/test_controller_toys.py (775 architectures, reward =
fraction of decisions matching a hidden 3-layer target): asks until the target, median
[worst] over seeds 0-19 (cap 3,000). With MetaQNN's constants (lr 0.01, no resampling) and
this schedule: 393 [1,676]; random search 2,422 [12,988]; a longer random stage (1.0 for 100,
then 10 per stage) 327 [1 seed missed]; ending the schedule at 0.3 (10 per stage) 474 [1
missed]; before the new trajectory was learned from directly (replay only, as MetaQNN) 448
[8,341], ending at 0.5 603 [1,113] and lr 0.1 518 [1,826]. Resampling repeats: 176 [1
missed]; resampling and lr 0.1: 170 [651] (the defaults).

On the tabular benchmark (benchmarks/digits-mlp, 1,884 MLPs; `search.bench`, controller seeds
0-29, budget 200): median evaluations to the top 1% ("k miss": k seeds not there in 200) and
mean regret after 25/50/100/200 evaluations. Same protocol: random search 63 (3 miss),
regret@200 .0028.

    options (unlisted: lr 0.01, no resampling, the schedule)  evals          regret@25/50/100/200
    MetaQNN's constants                                       36 (5 miss)    .0071 .0049 .0035 .0030
    1.0 for 10, then 0.9 ... 0.1 for 5 each ("short")         147 (12 miss)  .0069 .0057 .0056 .0043
    1.0 for 15, 0.5 for 15, then 0.1                          - (16 miss)    .0080 .0079 .0069 .0060
    initial Q 1.0                                             33.5           .0071 .0042 .0025 .0017
    lr 0.1                                                    33             .0071 .0042 .0022 .0013
    lr 0.1, short                                             32.5           .0062 .0036 .0018 .0013
    resample 10                                               22             .0058 .0037 .0026 .0017
    resample 10, lr 0.03                                      22             .0058 .0031 .0018 .0012
    resample 10, lr 0.1 (the defaults)                        22             .0058 .0036 .0015 .0008
    resample 10, lr 0.1, short                                31             .0066 .0031 .0018 .0009
    resample 10, lr 0.1, 1.0 for 20, then 8 each              23             .0058 .0036 .0016 .0008
    resample 10, epsilon 1.0 throughout                       22             .0058 .0035 .0024 .0015
    seeds 30-59: resample 10                                  20.5 (1 miss)  .0053 .0031 .0019 .0014
    seeds 30-59: the defaults                                 20.5           .0053 .0033 .0016 .0006
    seeds 30-59: the defaults, 1.0 for 20, 8 each             20.5           .0048 .0028 .0013 .0006

With MetaQNN's constants the greedy path soon repeats itself: each repeat is a wasted child and
one more update towards the same path, so a shorter schedule locks in earlier and misses more
(the "short" rows). Resampling repeats is what moved the median (36 -> 22); lr 0.1 then lets
the Q-values follow the rewards within a few hundred children (regret@200 .0017 -> .0008, and
no seed later than 65 evaluations). On this table the median itself is set by the random
stage (epsilon 1.0 throughout, random search without repeats, reaches the top as fast); what
the Q-learning adds shows in the regret after 100 and in the tail. Without resampling, a
shorter random stage did not help.

The second table, benchmarks/mackeyglass-tdnn (1,026 TDNNs, nrmse), showed that schedule as
too slow: median 91 evaluations to the top 1%, random 114. The random stage and the slow
decay spend half the median before the search exploits. Schedules compressed further, 60
controller seeds (0-59), budget 400, medians (random: 113 on mackeyglass-tdnn, 41.5 on
digits-mlp; evolution 52 and 27):

    schedule                                   mackeyglass-tdnn        digits-mlp
                                               evals   regret@200      evals  regret@200
    1.0 for 30, 0.9 ... 0.1 for 7-8 (before)   89      .0032           21     .0007
    1.0 for 15, 0.5/0.3 for 15 each, 0.1       57      .0029           26.5   .0009
    1.0 for 15, 0.3 for 10, 0.1                54      .0025           27     .0010
    1.0 for 15, 0.2                            65.5    .0025           25     .0009
    1.0 for 20, 0.2                            62.5    .0038           21.5   .0007
    1.0 for 10, 0.2                            54      .0038           25.5   .0009
    1.0 for 20, 0.3 for 10, 0.15               62.5    .0024           22     .0008
    1.0 for 15, 0.1 (the default)              56      .0028           23     .0012

On seeds 0-29 alone the default measured 53.5 and 21.5 (random 114 and 63). The differences
between these schedules are within the seed noise of a median (a few evaluations either way
between seed sets); what the compression bought is clear (89 -> 53-66). Tried and dropped:
initial Q 1.0 (93 on mackeyglass-tdnn), lr 0.3 (79.5), replaying 32 instead of 128 (117.5),
and raising epsilon at each resample after a repeat (78.5-93): a Q-learner that redraws more
decisions around the incumbent behaves like random search sooner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from controller.base import Candidate, Controller, draw_unasked, worst_for_failed
from controller.registry import register_controller


def _default_schedule() -> list[list[float]]:
    return [[1.0, 15], [0.1, 1]]


@dataclass
class QLearningOptions:
    """Options of the `qlearning` controller."""

    lr: float = 0.1
    """Q-learning rate alpha (MetaQNN: 0.01, too slow for 50-500 children; see above)."""
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

    def __post_init__(self) -> None:
        if not 0 < self.lr <= 1:
            raise ValueError(f"lr must be in (0, 1], got {self.lr}")
        if not 0 <= self.discount <= 1:
            raise ValueError(f"discount must be in [0, 1], got {self.discount}")
        if int(self.replay) != self.replay or self.replay < 0:
            raise ValueError(f"replay must be an integer >= 0, got {self.replay}")
        if int(self.resample) != self.resample or self.resample < 0:
            raise ValueError(f"resample must be an integer >= 0, got {self.resample}")
        self.replay, self.resample = int(self.replay), int(self.resample)
        self.schedule = check_schedule(self.schedule)


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
        self._worst: float | None = None
        self._skipped = 0
        self._asked: set[tuple[int, ...]] = set()

    def _state(self, slot: int, prev_slot: int, prev_action: int) -> int:
        """Offset of a state's row in the flat Q-table (-1 = no previous decision)."""
        _, P, A = self._shape
        return ((slot * P + prev_slot + 1) * A + prev_action + 1) * self.space.max_choices

    @property
    def epsilon(self) -> float:
        return staged_epsilon(self.options.schedule, self._next_id)

    # -- ask ----------------------------------------------------------------------------------

    def ask(self) -> Candidate:
        actions = draw_unasked(
            lambda _: self._sample(self.epsilon), list, self._asked, self.options.resample
        )
        return self._candidate(actions, epsilon=self.epsilon)

    def _sample(self, epsilon: float) -> list[int]:
        """One epsilon-greedy action sequence."""
        q, rng = self._q, self._rng
        actions: list[int] = []
        prev_slot = prev_action = -1
        while (slot := self.space.next_slot(actions)) is not None:
            n = len(slot.choices)  # the legal actions are 0 .. n - 1
            if rng.random() < epsilon:
                a = int(rng.integers(n))
            else:
                row = self._state(slot.index, prev_slot, prev_action)
                values = q[row : row + n]
                best = max(values)
                ties = [i for i, v in enumerate(values) if v == best]
                a = ties[int(rng.integers(len(ties)))] if len(ties) > 1 else ties[0]
            actions.append(a)
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
        self._update(*self._memory[-1])  # learn from the new trajectory, then replay
        for i in self._rng.integers(len(self._memory), size=self.options.replay):
            self._update(*self._memory[i])

    def _trajectory(self, actions) -> tuple[list[int], list[int], list[int]]:
        """Q-table rows, legal action counts and actions of an architecture's decisions."""
        rows, sizes = [], []
        prev_slot = prev_action = -1
        for t, a in enumerate(actions):
            slot = self.space.next_slot(actions[:t])
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
        }

    def _load_state_dict(self, state: dict) -> None:
        self._q = [float(v) for v in state["q"].tolist()]
        self._memory = [
            ([int(x) for x in r], [int(x) for x in s], [int(x) for x in a], float(w))
            for r, s, a, w in state["memory"]
        ]
        self._rng.bit_generator.state = state["rng"]
        self._worst = None if state["worst"] is None else float(state["worst"])
        self._skipped = int(state["skipped"])
        self._asked = {tuple(int(a) for a in actions) for actions in state.get("asked", [])}

    def stats(self) -> dict[str, float]:
        """Counters plus the current epsilon, the replay memory's size and skipped failures."""
        return {
            **super().stats(),
            "epsilon": self.epsilon,
            "memory": float(len(self._memory)),
            "skipped": float(self._skipped),
        }
