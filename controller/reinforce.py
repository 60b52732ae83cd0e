"""REINFORCE with an autoregressive LSTM policy (Zoph & Le 2017; ENAS, Pham et al. 2018).

The policy makes the space's decisions one after another. At each step its input is an
embedding of the previous action *in its slot* (a start token at the first step), so the
same choice index means different things in different slots; its output is that slot's own
row of logits (size `max_choices`). Logits are divided by the temperature, squashed to
(-C, C) by C * tanh(logits / C), masked with `space.action_mask(prefix)` (illegal -> -inf)
and sampled (in numpy, from the controller's own torch.Generator: a per-step torch call costs
more than the arithmetic). An architecture asked before is sampled again, up to `resample`
times (a repeat costs a child and teaches nothing). The log-probabilities are recomputed in
torch for the stored action sequences when the policy is updated, once every `batch` rewards,
with `update_steps` Adam steps on

    loss = -mean(min(ratio * advantage, clip(ratio, 1 - clip, 1 + clip) * advantage))
           - entropy_weight * mean(entropy),
    ratio = p(actions) / p_old(actions)    (p_old: the policy when the update began),
    advantage = (reward - baseline) / running_std    (running_std = 1 if not normalize)

(PPO's clipped objective; with one step, or clip None, it is plain REINFORCE's
-mean(advantage * log p(actions))).

where baseline is an exponential moving average of the rewards (bias-corrected like Adam's
moments, so it starts at the first reward instead of 0) and running_std the same average of
the squared deviations. The advantage is computed when the reward arrives, against the
baseline of the rewards before it. Children may be outstanding and rewards may arrive in
any order; a reward is credited to the sequence it was asked for (the policy may have moved
since: slightly off-policy, as in any asynchronous REINFORCE).

Failed children (reward None, NaN or +-inf) get the worst reward seen so far, so the policy
learns to avoid what fails; a failure before any finite reward is skipped.

Ranked proposals
----------------
Once a few rewards are told (`rank_after`), each ask draws `rank_samples` distinct unasked
architectures from the policy, adds the one-decision neighbours of the `rank_neighbours` best
told so far, and proposes the one a reward model ranks first: a bootstrap ensemble of small
MLPs over the one-hot action encoding, trained on every reward told, and ranking by the
members' mean plus one standard deviation (`rank_kappa`; `controller.ranking`, shared with
`qlearning` and `dqn`, which rank under one member drawn at random). The policy still learns
from every real reward as above; the model only chooses which of its draws is worth a child.

Defaults
--------
ENAS's settings (lr 3.5e-4, baseline decay 0.99) are tuned for thousands of cheap children; a
search here trains 20-500, and one of 20-50 children must move the policy within its first
ten. So the defaults take larger steps (a higher learning rate, several PPO-clipped steps per
update), resample repeats, keep exploring with a temperature above 1 (heated further at each
resample after a repeat) and replay the best architectures told so far. They were chosen on a
toy objective (tests/controller/test_reinforce_learns.py), then on the tabular benchmarks
(`rlnas bench`); every option tried, what won and what did not, with figures:
benchmarks/RESULTS.md#reinforce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from controller.base import Candidate, Controller, draw_unasked, worst_for_failed
from controller.ranking import Ranker, check_rank_options
from controller.registry import register_controller


@dataclass
class ReinforceOptions:
    """Options of the `reinforce` controller."""

    lr: float = 5e-3
    """Adam learning rate (ENAS: 3.5e-4, about 3x slower to a target; see
    benchmarks/RESULTS.md#reinforce)."""
    batch: int = 1
    """Rewards per policy-gradient update (ENAS: 1)."""
    hidden: int = 64
    """LSTM units, also the size of the action embeddings."""
    temperature: float = 2.0
    """Logits are divided by this before the tanh; > 1 explores more (2: the policy still
    explores after fast early steps; see benchmarks/RESULTS.md#reinforce)."""
    tanh_constant: float | None = 2.5
    """C in C * tanh(logits / C): bounds every logit to (-C, C); None turns it off."""
    entropy_weight: float = 1e-4
    """Weight of the policy's entropy (summed over decisions) subtracted from the loss."""
    baseline_decay: float = 0.9
    """Decay of the moving average of rewards and of their squared deviations (ENAS: 0.99,
    which lags behind an improving policy over a few hundred children)."""
    normalize: bool = True
    """Divide the advantage by the running standard deviation of the rewards (accuracies
    differ by 0.01, losses by 100: the entropy bonus then weighs the same for both)."""
    update_steps: int = 4
    """Gradient steps per update on the same batch (PPO-style reuse; see `clip`)."""
    clip: float | None = 0.2
    """PPO clipping of the probability ratio to [1 - clip, 1 + clip] against the policy at the
    start of the update (only matters with update_steps > 1); None: plain REINFORCE."""
    resample: int = 10
    """When a sampled architecture was asked before, sample again, up to this many times (a
    repeat costs a child and teaches nothing new)."""
    resample_heat: float = 1.3
    """Each resample after a repeat multiplies the temperature by this once more (> 1: a
    policy that keeps proposing what it has seen explores that architecture's neighbours)."""
    replay_best: int = 4
    """Every update also takes this many of the best distinct architectures told before, with
    their advantage against the current baseline, into its PPO-clipped steps (0: off)."""
    rank_samples: int = 16
    """Draw this many distinct architectures from the policy and propose the one a reward model
    learned from the rewards told so far ranks first (`controller.reward_model`; 0 or 1: off;
    see benchmarks/RESULTS.md#reinforce)."""
    rank_after: int = 4
    """Rewards told before the reward model ranks proposals (until then: one draw)."""
    rank_neighbours: int = 2
    """The one-decision neighbours of this many of the best architectures told so far join the
    draws the reward model ranks (as BANANAS ranks mutations; 0: policy draws only)."""
    rank_kappa: float | None = 1.0
    """The reward model ranks by its members' mean plus this times their standard deviation
    (an upper confidence bound); None: under one member drawn at random (Thompson sampling)."""

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if int(self.batch) != self.batch or self.batch < 1:
            raise ValueError(f"batch must be an integer >= 1, got {self.batch}")
        if int(self.hidden) != self.hidden or self.hidden < 1:
            raise ValueError(f"hidden must be an integer >= 1, got {self.hidden}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.tanh_constant is not None and not self.tanh_constant > 0:
            raise ValueError(f"tanh_constant must be > 0 or None, got {self.tanh_constant}")
        if not self.entropy_weight >= 0:
            raise ValueError(f"entropy_weight must be >= 0, got {self.entropy_weight}")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")
        if int(self.update_steps) != self.update_steps or self.update_steps < 1:
            raise ValueError(f"update_steps must be an integer >= 1, got {self.update_steps}")
        if int(self.resample) != self.resample or self.resample < 0:
            raise ValueError(f"resample must be an integer >= 0, got {self.resample}")
        if not self.resample_heat >= 1:
            raise ValueError(f"resample_heat must be >= 1, got {self.resample_heat}")
        if int(self.replay_best) != self.replay_best or self.replay_best < 0:
            raise ValueError(f"replay_best must be an integer >= 0, got {self.replay_best}")
        check_rank_options(self)
        if self.rank_kappa is not None and not self.rank_kappa >= 0:
            raise ValueError(f"rank_kappa must be None or >= 0, got {self.rank_kappa}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be > 0 or None, got {self.clip}")
        self.batch, self.hidden = int(self.batch), int(self.hidden)
        self.update_steps, self.resample = int(self.update_steps), int(self.resample)
        self.replay_best = int(self.replay_best)


class Policy(nn.Module):
    """LSTM over decisions: input = embedding of (previous slot, previous action), output =
    the current slot's own row of logits."""

    def __init__(self, max_steps: int, max_choices: int, hidden: int) -> None:
        super().__init__()
        self.max_choices = max_choices
        self.embed = nn.Embedding(1 + max_steps * max_choices, hidden)  # token 0 = start
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.weight = nn.Parameter(torch.empty(max_steps, max_choices, hidden))  # one head/slot
        self.bias = nn.Parameter(torch.empty(max_steps, max_choices))

    def token(self, slot: int, action: int) -> int:
        """Input token that stands for `action` taken in `slot`."""
        return 1 + slot * self.max_choices + action

    def forward(self, tokens: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Whole sequences: tokens, slots (B, T) -> logits (B, T, max_choices)."""
        h, _ = self.lstm(self.embed(tokens))  # (B, T, H)
        return torch.einsum("bth,btkh->btk", h, self.weight[slots]) + self.bias[slots]

    def arrays(self) -> tuple[np.ndarray, ...]:
        """Numpy views of the parameters (Adam updates them in place), for `lstm_step`."""
        ((w_ih, w_hh, b_ih, b_hh),) = self.lstm.all_weights  # one layer
        params = (self.embed.weight, w_ih, w_hh, b_ih + b_hh, self.weight, self.bias)
        return tuple(p.detach().numpy() for p in params)


def lstm_step(arrays, token: int, slot: int, h: np.ndarray, c: np.ndarray):
    """`Policy.forward` for one step of one sequence, in numpy: a torch call costs ~10 us, and
    sampling makes ~10 per decision. -> logits (max_choices,), h, c."""
    embed, w_ih, w_hh, b, weight, bias = arrays
    gates = w_ih @ embed[token] + w_hh @ h + b
    n = len(h)  # nn.LSTM's gate order; slices, not np.split (its wrapper costs more here)
    i, f, g, o = gates[:n], gates[n : 2 * n], gates[2 * n : 3 * n], gates[3 * n :]
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    return weight[slot] @ h + bias[slot], h, c


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@register_controller("reinforce")
class Reinforce(Controller):
    """REINFORCE over the space's decisions; see the module docstring."""

    Options = ReinforceOptions

    def __init__(self, space, seed: int = 0, **options) -> None:
        super().__init__(space, seed=seed, **options)
        self._build()
        self._baseline_sum = 0.0  # un-debiased moving averages, as Adam keeps its moments
        self._var_sum = 0.0
        self._n_rewards = 0  # rewards (finite or substituted) that entered the averages
        self._worst: float | None = None
        self._skipped = 0
        self._buffer: list[tuple[list[int], float]] = []  # (actions, advantage) until update
        self._asked: set[tuple[int, ...]] = set()  # every architecture asked (for `resample`)
        self._history: list[tuple[float, list[int]]] = []  # (reward, actions), told order
        self._stats = {"loss": 0.0, "entropy": 0.0, "updates": 0.0}

    def _build(self) -> None:
        o = self.options
        self._generator = torch.Generator().manual_seed(self.seed)
        self.policy = Policy(self.space.max_steps, self.space.max_choices, o.hidden)
        with torch.no_grad():  # ENAS init, drawn from our own generator
            for p in self.policy.parameters():
                p.uniform_(-0.1, 0.1, generator=self._generator)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=o.lr)
        self._ranker = Ranker(
            self.space, self.seed, o.rank_samples, o.rank_neighbours, o.rank_after, o.rank_kappa
        )

    def _squash(self, logits, mask, heat: float = 1.0):
        """Temperature (times `heat`), tanh clipping, then the space's mask (illegal -> -inf);
        works on torch tensors and numpy arrays alike."""
        tanh = torch.tanh if isinstance(logits, torch.Tensor) else np.tanh
        logits = logits / (self.options.temperature * heat)
        c = self.options.tanh_constant
        if c is not None:
            logits = c * tanh(logits / c)
        if isinstance(logits, torch.Tensor):
            return logits.masked_fill(~mask, -math.inf)
        return np.where(mask, logits, -np.inf)

    # -- ask ----------------------------------------------------------------------------------

    def ask(self) -> Candidate:
        o = self.options
        if self._ranker.ready:
            queue: list[tuple[list[int], float, float]] = []

            def draw(retry: int) -> tuple[list[int], float, float]:
                if retry:  # past the batch: one at a time, each hotter
                    return self._sample(o.resample_heat**retry)
                if not queue:
                    queue.extend(self._draws(o.rank_samples))
                return queue.pop(0)

            actions, log_prob, entropy = self._ranker.propose(
                draw,
                lambda drawn: drawn[0],
                lambda actions: self._sample(forced=actions),
                self._asked,
                o.resample,
                self._history,
                self._generator,
            )
        else:
            actions, log_prob, entropy = draw_unasked(
                lambda retry: self._sample(o.resample_heat**retry),
                lambda drawn: drawn[0],
                self._asked,
                o.resample,
            )
        if not self._stats["updates"]:
            self._stats["entropy"] = entropy  # until the first update reports the batch mean
        return self._candidate(actions, log_prob=log_prob, entropy=entropy)

    def _sample(
        self, heat: float = 1.0, forced: list[int] | None = None
    ) -> tuple[list[int], float, float]:
        """One action sequence drawn from the policy at its temperature times `heat` (or the
        `forced` one): -> actions, and the policy's own log-probability and entropy along
        them."""
        arrays = self.policy.arrays()
        h = c = np.zeros(self.options.hidden, dtype=np.float32)
        actions: list[int] = []
        token, log_prob, entropy = 0, 0.0, 0.0
        walk = self.space.walk()
        while (slot := walk.next_slot()) is not None:
            logits, h, c = lstm_step(arrays, token, slot.index, h, c)
            mask = self.space.slot_mask(slot)
            logits = logits.astype(np.float64)
            logp = _log_softmax(self._squash(logits, mask))
            p = np.exp(logp)
            # inverse-CDF sampling with the controller's torch generator, from the heated policy
            cdf = np.cumsum(
                p if heat == 1 else np.exp(_log_softmax(self._squash(logits, mask, heat)))
            )
            if forced is None:
                u = float(torch.rand((), dtype=torch.float64, generator=self._generator))
                a = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
            else:
                a = forced[len(actions)]
            log_prob += float(logp[a])
            entropy -= float((p[mask] * logp[mask]).sum())
            actions.append(a)
            walk.take(a)
            token = self.policy.token(slot.index, a)
        return actions, log_prob, entropy

    def _draws(self, count: int, heat: float = 1.0) -> list[tuple[list[int], float, float]]:
        """`count` action sequences drawn side by side from the policy at its temperature times
        `heat`, one LSTM step for all of them per decision: -> as `_sample`'s."""
        embed, w_ih, w_hh, b, weight, bias = self.policy.arrays()
        n_hidden, k = self.options.hidden, self.space.max_choices
        h = np.zeros((count, n_hidden), dtype=np.float32)
        c = np.zeros((count, n_hidden), dtype=np.float32)
        tokens = np.zeros(count, dtype=np.int64)
        log_prob, entropy = np.zeros(count), np.zeros(count)
        walks = [self.space.walk() for _ in range(count)]
        slots = [walk.next_slot() for walk in walks]
        actions: list[list[int]] = [[] for _ in range(count)]
        while live := [i for i, slot in enumerate(slots) if slot is not None]:
            rows = np.asarray(live)
            gates = embed[tokens[rows]] @ w_ih.T + h[rows] @ w_hh.T + b
            i, f, g, o = np.split(gates, 4, axis=1)  # nn.LSTM's gate order
            c[rows] = _sigmoid(f) * c[rows] + _sigmoid(i) * np.tanh(g)
            h[rows] = _sigmoid(o) * np.tanh(c[rows])
            index = np.asarray([slots[j].index for j in live])
            logits = np.einsum("bkh,bh->bk", weight[index], h[rows]) + bias[index]
            legal = np.arange(k) < np.asarray([len(slots[j].choices) for j in live])[:, None]
            logits = logits.astype(np.float64)
            logp = _log_softmax(self._squash(logits, legal))
            p = np.exp(logp)
            hot = p if heat == 1 else np.exp(_log_softmax(self._squash(logits, legal, heat)))
            cdf = np.cumsum(hot, axis=1)
            u = torch.rand(len(live), dtype=torch.float64, generator=self._generator).numpy()
            taken = (cdf <= (u * cdf[:, -1])[:, None]).sum(1)  # inverse-CDF sampling
            taken = np.minimum(taken, legal.sum(1) - 1)
            log_prob[rows] += logp[np.arange(len(live)), taken]
            entropy[rows] -= np.where(legal, p * np.where(legal, logp, 0.0), 0.0).sum(1)
            for j, a in zip(live, taken.tolist(), strict=True):
                actions[j].append(a)
                walks[j].take(a)
                tokens[j] = self.policy.token(slots[j].index, a)
                slots[j] = walks[j].next_slot()
        return [(actions[j], float(log_prob[j]), float(entropy[j])) for j in range(count)]

    # -- tell and learn -----------------------------------------------------------------------

    def tell(self, candidate: Candidate, reward: float | None) -> None:
        candidate = self._settle(candidate)
        reward, self._worst = worst_for_failed(reward, self._worst)
        if reward is None:
            self._skipped += 1
            return
        self._buffer.append((list(candidate.actions), self._advantage(reward)))
        self._history.append((reward, list(candidate.actions)))
        self._ranker.tell(candidate.actions, reward)
        if len(self._buffer) >= self.options.batch:
            self._update()

    def _advantage(self, reward: float) -> float:
        """Advantage of `reward` against the rewards before it; then update the averages."""
        d, n = self.options.baseline_decay, self._n_rewards
        advantage = 0.0  # the first reward has nothing to be compared with
        if n > 0:
            advantage = reward - self.baseline
            self._var_sum = d * self._var_sum + (1 - d) * advantage**2
            if self.options.normalize:  # std includes this deviation: |advantage| is bounded
                advantage /= math.sqrt(self._var_sum / (1 - d**n)) + 1e-8
        self._baseline_sum = d * self._baseline_sum + (1 - d) * reward
        self._n_rewards += 1
        return advantage

    @property
    def baseline(self) -> float:
        """Bias-corrected moving average of the rewards (0 before the first)."""
        n = self._n_rewards
        return self._baseline_sum / (1 - self.options.baseline_decay**n) if n else 0.0

    @property
    def reward_std(self) -> float:
        """Bias-corrected moving root-mean-square deviation of rewards from the baseline."""
        n = self._n_rewards - 1  # deviations seen
        var = self._var_sum / (1 - self.options.baseline_decay**n) if n > 0 else 0.0
        return math.sqrt(var)

    def _log_probs(self, sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability and entropy (summed over decisions) of whole action sequences under
        the current policy, with gradients: -> (B,), (B,)."""
        return self._log_probs_of(self._batch(sequences))

    def _batch(self, sequences: list[list[int]]) -> tuple[torch.Tensor, ...]:
        """The tensors `_log_probs_of` reads for `sequences` (made once per update)."""
        K, B, T = self.space.max_choices, len(sequences), max(map(len, sequences))
        tokens = np.zeros((B, T), dtype=np.int64)  # input at step t (0 = start)
        slots = np.zeros((B, T), dtype=np.int64)
        masks = np.ones((B, T, K), dtype=bool)  # padding: all legal, then ignored
        chosen = np.zeros((B, T), dtype=np.int64)
        valid = np.zeros((B, T), dtype=np.float32)
        for i, actions in enumerate(sequences):
            n = len(actions)
            for t, slot in enumerate(self.space.slots_of(actions)):
                slots[i, t] = slot.index
                masks[i, t] = self.space.slot_mask(slot)
                if t + 1 < n:
                    tokens[i, t + 1] = self.policy.token(slots[i, t], actions[t])
            chosen[i, :n], valid[i, :n] = actions, 1.0
        legal, weight = torch.from_numpy(masks), torch.from_numpy(valid)
        taken = torch.from_numpy(chosen).unsqueeze(2)  # (B, T, 1)
        return torch.from_numpy(tokens), torch.from_numpy(slots), legal, weight, taken

    def _log_probs_of(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """`_log_probs` of the tensors `_batch` made."""
        tokens, slots, legal, weight, taken = batch
        logits = self.policy(tokens, slots)
        logp = F.log_softmax(self._squash(logits, legal), dim=-1)  # (B, T, K)
        log_prob = (logp.gather(2, taken).squeeze(2) * weight).sum(1)
        entropy = (-(logp.exp() * logp.masked_fill(~legal, 0.0)).sum(2) * weight).sum(1)
        return log_prob, entropy

    def _best_before(self, n: int) -> list[tuple[list[int], float]]:
        """The `replay_best` best distinct architectures among the first `n` told (earlier
        first on ties), with their advantage against the current baseline."""
        scale = self.reward_std + 1e-8 if self.options.normalize else 1.0
        out: list[tuple[list[int], float]] = []
        seen: set[tuple[int, ...]] = set()
        for reward, actions in sorted(self._history[:n], key=lambda x: -x[0]):
            if tuple(actions) not in seen:
                seen.add(tuple(actions))
                out.append((actions, (reward - self.baseline) / scale))
                if len(out) == self.options.replay_best:
                    break
        return out

    def _update(self) -> None:
        """`update_steps` policy-gradient steps on the buffered sequences, PPO-clipped when
        `clip` is set."""
        o = self.options
        batch, self._buffer = self._buffer, []
        if o.replay_best:
            batch = batch + self._best_before(len(self._history) - len(batch))
        advantage = torch.tensor([adv for _, adv in batch])
        old_log_prob = None  # the policy's log p(actions) when the update began
        tensors = self._batch([actions for actions, _ in batch])
        for _ in range(o.update_steps):
            log_prob, entropy = self._log_probs_of(tensors)
            if o.clip is None:
                pg_loss = -(advantage * log_prob).mean()
            else:
                if old_log_prob is None:
                    old_log_prob = log_prob.detach()
                ratio = torch.exp(log_prob - old_log_prob)
                clipped = torch.clamp(ratio, 1 - o.clip, 1 + o.clip)
                pg_loss = -torch.min(advantage * ratio, advantage * clipped).mean()
            loss = pg_loss - o.entropy_weight * entropy.mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self._stats["loss"] = float(loss.detach())
        self._stats["entropy"] = float(entropy.detach().mean())
        self._stats["updates"] += 1

    # -- state and stats ----------------------------------------------------------------------

    def _state_dict(self) -> dict:
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self._generator.get_state(),
            "baseline_sum": self._baseline_sum,
            "var_sum": self._var_sum,
            "rewards": self._n_rewards,
            "worst": self._worst,
            "skipped": self._skipped,
            "buffer": [[list(actions), adv] for actions, adv in self._buffer],
            "asked": [list(actions) for actions in sorted(self._asked)],
            "history": [[reward, list(actions)] for reward, actions in self._history],
            "stats": dict(self._stats),
            "reward_model": self._ranker.state_dict(),
        }

    def _load_state_dict(self, state: dict) -> None:
        self._build()  # the options may differ from the ones this controller was built with
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._generator.set_state(state["generator"])
        self._baseline_sum = float(state["baseline_sum"])
        self._var_sum = float(state["var_sum"])
        self._n_rewards = int(state["rewards"])
        self._worst = None if state["worst"] is None else float(state["worst"])
        self._skipped = int(state["skipped"])
        self._buffer = [([int(a) for a in actions], float(adv)) for actions, adv in state["buffer"]]
        self._asked = {tuple(int(a) for a in actions) for actions in state.get("asked", [])}
        self._history = [
            (float(r), [int(a) for a in actions]) for r, actions in state.get("history", [])
        ]
        self._stats = {k: float(v) for k, v in state["stats"].items()}
        if "reward_model" in state:
            self._ranker.load_state_dict(state["reward_model"])

    def stats(self) -> dict[str, float]:
        """Counters plus baseline, reward_std, and the loss and mean policy entropy (nats per
        architecture) of the last update."""
        return {
            **super().stats(),
            **self._stats,
            "baseline": self.baseline,
            "reward_std": self.reward_std,
            "skipped": float(self._skipped),
        }

    def _warm_start(self, state: dict, shared) -> str:
        """The policy's weights: the LSTM's whole, each shared decision's head row and input
        embedding per shared choice (the rest keep their initial weights). The optimiser,
        baseline, history and generator stay this search's own: rewards of another search are
        not this one's."""
        source = state["algorithm"]["policy"]
        hidden = int(source["lstm.weight_hh_l0"].shape[1])
        if hidden != self.options.hidden:
            raise ValueError(
                f"the saved policy has {hidden} hidden units, this one {self.options.hidden} "
                "(option hidden)"
            )
        weights = {k: v.detach().clone() for k, v in self.policy.state_dict().items()}
        for key in weights:
            if key.startswith("lstm."):
                weights[key] = source[key].clone()
        weights["embed.weight"][0] = source["embed.weight"][0]  # the start token
        k = shared.source.max_choices
        for t_slot, t_choice, s_slot, s_choice in shared.pairs():
            ours, theirs = self.policy.token(t_slot, t_choice), 1 + s_slot * k + s_choice
            weights["embed.weight"][ours] = source["embed.weight"][theirs]
            weights["weight"][t_slot, t_choice] = source["weight"][s_slot, s_choice]
            weights["bias"][t_slot, t_choice] = source["bias"][s_slot, s_choice]
        self.policy.load_state_dict(weights)
        return "its policy network"


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-softmax along the last axis (-inf stays -inf)."""
    logp = logits - logits.max(axis=-1, keepdims=True)
    return logp - np.log(np.exp(logp).sum(axis=-1, keepdims=True))
