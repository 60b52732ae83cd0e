"""Early stopping of children, and what the controller is told about a child stopped early.

``--scheduler asha`` is Ray Tune's asynchronous successive halving (Li et al. 2020): at each
rung (epochs ``grace * rf**k``) a child whose reward so far falls below the top ``1/rf`` of
the children that reached that rung before it is stopped. ``hyperband`` is its asynchronous
Hyperband: several such brackets, each child in one of them, the last bracket stopping no
one. Either only stops children (it never pauses one), so no child has to be checkpointed
mid-training.

A stopped child has no final reward. Tune hands the searcher its last per-epoch result as
if it had finished; this project instead tells the controller an estimate on the full
budget's scale, `StoppedChildren.estimate`: the child's reward at the epoch it reached plus
the median gain from that epoch to the end among the children trained to the full budget
(its own reward when none has been), capped at the lowest final reward of those that were
at least as good as it at that epoch, so that a child stopped for being behind is never
told it beat them. Its run and leaderboard row say it was stopped and at
which epoch; the registered model always comes from a child trained to the full budget.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from search.config import AUTO_SCHEDULER, SCHEDULERS

__all__ = [
    "SCHEDULERS",
    "RungScheduler",
    "StoppedChildren",
    "concrete_scheduler",
    "make_scheduler",
    "rung_epochs",
]


def concrete_scheduler(name: str, epochs: int, grace_epochs: int, reports_epochs: bool) -> str:
    """The scheduler `name` stands for: ``auto`` is ``asha`` where it can stop a child (the
    children report a reward each epoch, and an epoch before the last is a rung), else
    ``fifo``; any other name is itself."""
    if name != AUTO_SCHEDULER:
        return name
    return "asha" if reports_epochs and grace_epochs < epochs else "fifo"


def rung_epochs(epochs: int, grace: int, reduction_factor: int) -> list[int]:
    """The epochs at which ASHA may stop a child of `epochs` epochs: ``grace * rf**k`` before
    the last epoch."""
    rungs, milestone = [], grace
    while milestone < epochs:
        rungs.append(milestone)
        milestone *= reduction_factor
    return rungs


class RungScheduler(AsyncHyperBandScheduler):
    """Tune's asynchronous successive halving, fed per-epoch reports only: a child's final
    report (which carries its checkpoint) is never judged, nor is a confirmation run (it
    retrains one of the best architectures to the full budget), and the rungs' records can be
    saved with the search's state and loaded on resume."""

    def __init__(self, epochs: int, seed: int = 0, **kwargs: Any):
        super().__init__(**kwargs, max_t=epochs, stop_last_trials=False)
        for bracket in self._brackets:  # no rung at the last epoch: it would stop a done child
            bracket._rungs = [(m, r) for m, r in bracket._rungs if m < epochs]
        self._rng = np.random.default_rng(seed)

    def on_trial_add(self, tune_controller, trial) -> None:
        """A bracket for the new trial, as Tune draws it (brackets with more rungs more
        often), from the search's own seed rather than NumPy's global one."""
        sizes = np.array([len(bracket._rungs) for bracket in self._brackets])
        weights = np.exp(sizes - sizes.max())
        pick = self._rng.choice(len(sizes), p=weights / weights.sum())
        self._trial_info[trial.trial_id] = self._brackets[pick]

    def on_trial_result(self, tune_controller, trial, result: dict[str, Any]) -> str:
        if result.get("final") or (getattr(trial, "config", None) or {}).get("confirmation"):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict[str, Any]) -> None:
        self._trial_info.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._trial_info.pop(trial.trial_id, None)

    def rungs_state(self) -> list[list[list[Any]]]:
        """Each bracket's rungs: [milestone, {trial id: reward}] (plain data)."""
        return [
            [[float(milestone), dict(recorded)] for milestone, recorded in bracket._rungs]
            for bracket in self._brackets
        ]

    def load_rungs(self, state: list[list[list[Any]]]) -> None:
        """Continue from `rungs_state()` of a scheduler with the same settings."""
        for bracket, rungs in zip(self._brackets, state, strict=False):
            for (milestone, recorded), (saved, values) in zip(bracket._rungs, rungs, strict=False):
                if float(milestone) == float(saved):
                    recorded.update({str(k): float(v) for k, v in values.items()})


def make_scheduler(
    name: str, epochs: int, grace_epochs: int, reduction_factor: int, seed: int = 0
) -> RungScheduler | None:
    """The scheduler `name` for children of `epochs` epochs; None for ``fifo``."""
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler {name!r}: expected one of {', '.join(SCHEDULERS)}")
    if name == "fifo":
        return None
    rungs = len(rung_epochs(epochs, grace_epochs, reduction_factor))
    return RungScheduler(
        epochs,
        seed,
        time_attr="training_iteration",  # the search's Tuner sets metric and mode
        grace_period=grace_epochs,
        reduction_factor=reduction_factor,
        # Hyperband: one bracket per first rung, and one that stops no one
        brackets=1 if name == "asha" else rungs + 1,
    )


class StoppedChildren:
    """Learning curves (reward so far, per epoch) of the children in training and of those
    trained to the full budget; the estimate the controller is told for a stopped child."""

    def __init__(self) -> None:
        self.live: dict[str, list[float]] = {}
        self.full: list[tuple[list[float], float]] = []

    def epoch(self, trial_id: str, reward: float) -> None:
        """Trial `trial_id` reported the reward so far of its next epoch."""
        self.live.setdefault(trial_id, []).append(float(reward))

    def finished(self, trial_id: str, reward: float | None) -> None:
        """Trial `trial_id` trained to the full budget and scored `reward` (None: failed)."""
        curve = self.live.pop(trial_id, [])
        if curve and reward is not None and math.isfinite(reward):
            self.full.append((curve, float(reward)))

    def forget(self, trial_id: str) -> None:
        self.live.pop(trial_id, None)

    def stopped(self, trial_id: str) -> tuple[int, float] | None:
        """(epoch reached, estimate) for a trial stopped early, or None when it reported no
        epoch."""
        curve = self.live.pop(trial_id, [])
        if not curve:
            return None
        return len(curve), self.estimate(len(curve), curve[-1])

    def estimate(self, epoch: int, reward: float) -> float:
        """`reward` at `epoch` plus the median gain from that epoch to the end among the
        children trained to the full budget (no gain when none reached it), but not above
        the lowest final reward of those that were at least as good at `epoch`: the child
        was stopped for being behind them."""
        reached = [(curve[epoch - 1], final) for curve, final in self.full if len(curve) >= epoch]
        if not reached:
            return reward
        estimate = reward + statistics.median(final - then for then, final in reached)
        ahead = [final for then, final in reached if then >= reward]
        return min([estimate, *ahead])

    def state_dict(self) -> dict[str, Any]:
        return {"full": [[curve, final] for curve, final in self.full]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.live = {}
        self.full = [([float(v) for v in curve], float(final)) for curve, final in state["full"]]
