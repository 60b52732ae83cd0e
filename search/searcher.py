"""`ControllerSearcher`: the Ray Tune `Searcher` in front of the chain of stages.

Tune asks for trials and hears how they end; the chain (`search.stages`) decides what to
train and tells the controller. This adapter only maps Tune's trial ids to proposals, turns a
trial's end into an `Outcome`, and trains proposals again as the same child when their worker
died (once, without the controller hearing of it) or when a resumed search finds them cut off.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ray.tune.search import Searcher

from controller import Candidate, Controller
from search.child_setup import ChildSetup
from search.schedulers import StoppedChildren
from search.stages import (
    FINISHED,
    Budget,
    ChainSettings,
    Confirmation,
    ControllerStage,
    Deduplication,
    FailureStop,
    IncludeQueue,
    Outcome,
    Proposal,
    SearchError,
    chain_stages,
)

__all__ = ["ControllerSearcher", "SearchError", "default_reward"]

RewardFn = Callable[[dict[str, Any]], "float | None"]
"""The reward of a finished child from its final result."""

ATTEMPTS = 2
"""Trainings of one proposal whose worker died (a crashed process, a lost node)."""


def default_reward(result: dict[str, Any]) -> float | None:
    """The ``reward`` the child reported."""
    return result.get("reward")


class ControllerSearcher(Searcher):
    """Thin adapter: ``suggest`` = the chain's ``propose``, ``on_trial_complete`` = ``done``.

    Args:
        controller: Any registered controller.
        setup: Static settings copied into every trial's config (task, epochs, ...).
        validate: Why an architecture cannot be built for the task, or None.
        key_of: Canonical key of an architecture (``space.key``).
        on_invalid: Called with (candidate, reason) for each unbuildable proposal.
        on_reuse: Called with (candidate, key, reward) for each proposal answered from cache.
        reward_of: The reward of a finished child from its final result.
        duplicates, invalid_reward, max_skipped_in_row, space_size, seed, include, budget, confirm,
        confirm_runs, max_failures: see `search.stages.ChainSettings`.
        on_change: Called after every suggestion (the state changed: save it).
    """

    def __init__(
        self,
        controller: Controller,
        setup: ChildSetup,
        validate: Callable[[dict[str, Any]], str | None],
        key_of: Callable[[dict[str, Any]], str] | None = None,
        on_invalid: Callable[[Candidate, str], None] | None = None,
        on_reuse: Callable[[Candidate, str, float | None], None] | None = None,
        reward_of: RewardFn = default_reward,
        duplicates: str = "reuse",
        invalid_reward: float = 0.0,
        max_skipped_in_row: int = 1000,
        space_size: int | None = None,
        seed: int = 0,
        include: list[dict[str, Any]] | None = None,
        budget: int | None = None,
        time_budget: float | None = None,
        clock: Callable[[], float] | None = None,
        parallel: int = 1,
        confirm: int = 0,
        confirm_runs: int = 2,
        max_failures: int = 0,
        on_change: Callable[[], None] | None = None,
    ):
        super().__init__(metric="reward", mode="max")
        key_of = key_of or (lambda arch: json.dumps(arch, sort_keys=True))
        invalid, reuse = on_invalid, on_reuse
        self.chain = chain_stages(
            controller,
            ChainSettings(
                validate=validate,
                key_of=key_of,
                seed=seed,
                budget=budget,
                time_budget=time_budget,
                clock=clock,
                parallel=parallel,
                duplicates=duplicates,
                include=list(include or []),
                confirm=confirm,
                confirm_runs=confirm_runs,
                invalid_reward=invalid_reward,
                max_skipped_in_row=max_skipped_in_row,
                space_size=space_size,
                max_failures=max_failures,
                on_invalid=invalid and (lambda p, reason: invalid(_candidate(p), reason)),
                on_reuse=reuse and (lambda p, reward: reuse(_candidate(p), p.key, reward)),
            ),
        )
        self.controller = controller
        self.setup = setup
        self.reward_of = reward_of
        self.on_change = on_change or (lambda: None)
        self.live: dict[str, Proposal] = {}  # trial id -> its proposal
        self.rerun: list[tuple[str, Proposal]] = []  # (trial id it replaces, proposal)
        self.timed_out: dict[str, float] = {}  # trial id -> the limit it exceeded (s)
        self.finished = False  # the chain said FINISHED: nothing more to train
        self.curves = StoppedChildren()
        self.stopped_early: dict[str, tuple[int, float]] = {}  # trial id -> (epoch, estimate)

    # -- views used by the runner and the tests ---------------------------------------------

    @property
    def planned(self) -> int:
        """Trainings this searcher will suggest in all (see `Stage.planned`)."""
        return self.chain.planned() or 0

    @property
    def failure_stop(self) -> str:
        """Why a run of failures stopped the search, or empty."""
        return self.chain.require(FailureStop).stopped

    @property
    def exhausted(self) -> bool:
        """The controller proposed nothing new before the budget was spent."""
        return self.chain.require(Deduplication).exhausted

    @property
    def waiting(self) -> dict[str, list[Proposal]]:
        return self.chain.require(Deduplication).waiting

    @property
    def included(self) -> list[dict[str, Any]]:
        return self.chain.require(IncludeQueue).queue

    def will_rerun(self, trial_id: str) -> bool:
        """Whether this ended trial is trained again as the same child."""
        return any(old == trial_id for old, _ in self.rerun)

    # -- Tune's side -------------------------------------------------------------------------

    # Tune's annotation leaves out the Searcher.FINISHED string its docs ask for
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        replaces = None
        proposal: Proposal | str | None
        if self.rerun:
            replaces, proposal = self.rerun.pop(0)
        else:
            proposal = self.chain.propose()
        if not isinstance(proposal, Proposal):
            self.finished = self.finished or proposal == FINISHED
            return proposal
        self.live[trial_id] = proposal
        self.on_change()
        config = {
            "architecture": proposal.architecture,
            "candidate_id": proposal.candidate_id,
            "train_seed": proposal.train_seed,
            "setup": self.setup,
        }
        if proposal.kind != "proposed":
            config[proposal.kind] = True
        if replaces is not None:
            config["trains_again"] = replaces
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if not result.get("final") and "reward" in result:
            self.curves.epoch(trial_id, float(result["reward"]))

    def outcome(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> Outcome:
        """How trial `trial_id` ended, from Tune's last result."""
        if trial_id in self.stopped_early:
            return Outcome(self.stopped_early[trial_id][1], stopped=True)
        if trial_id in self.timed_out:
            return Outcome(None, f"exceeded the child timeout of {self.timed_out[trial_id]:g} s")
        if error:
            return Outcome(None, "its worker process died")
        result = result or {}
        if result.get("error"):
            return Outcome(None, str(result["error"]))
        reward = None if result.get("diverged") else self.reward_of(result)
        if reward is None or not math.isfinite(float(reward)):
            return Outcome(None)
        return Outcome(float(reward))

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        proposal = self.live.pop(trial_id, None)
        if proposal is None:
            self.curves.forget(trial_id)
            return
        if error and trial_id not in self.timed_out and proposal.attempt < ATTEMPTS:
            proposal.attempt += 1
            self.rerun.append((trial_id, proposal))
            self.curves.forget(trial_id)
            return
        if not error and result and not result.get("final") and trial_id not in self.timed_out:
            self._stopped(trial_id, result)
        outcome = self.outcome(trial_id, result, error)
        if trial_id not in self.stopped_early:
            self.curves.finished(trial_id, outcome.finite_reward)
        self.chain.done(proposal, outcome)

    def _stopped(self, trial_id: str, result: dict[str, Any]) -> None:
        """A scheduler stopped the trial early: the estimate the controller is told."""
        curve = self.curves.live.get(trial_id, [])
        if "reward" in result and int(result.get("training_iteration", 0)) == len(curve) + 1:
            self.curves.epoch(trial_id, float(result["reward"]))  # Tune withholds the last
        stopped = self.curves.stopped(trial_id)
        if stopped is not None:
            self.stopped_early[trial_id] = stopped

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The chain's state and every training not yet ended (trained again on resume)."""
        outstanding = [(old, p) for old, p in self.rerun] + list(self.live.items())
        return {
            "chain": self.chain.chain_state(),
            "outstanding": [[trial_id, p.to_dict()] for trial_id, p in outstanding],
            "finished": self.finished,
            "curves": self.curves.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`: trainings that were running are trained again first."""
        self.chain.load_chain_state(state["chain"])
        self.rerun = [(trial_id, Proposal.from_dict(p)) for trial_id, p in state["outstanding"]]
        self.live, self.timed_out, self.stopped_early = {}, {}, {}
        self.finished = False
        if "curves" in state:  # saved before early stopping existed: none
            self.curves.load_state_dict(state["curves"])
        self.chain.require(FailureStop).reset()

    def grow_budget(self, budget: int) -> None:
        """A resumed search may train more children than it first planned."""
        stage = self.chain.find(Confirmation)
        if stage is not None and stage.queue is not None:
            raise SearchError("the confirmation runs have started: the budget can no longer grow")
        self.chain.require(Budget).budget = budget

    def save(self, checkpoint_path: str) -> None:
        torch.save(self.state_dict(), checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.load_state_dict(torch.load(Path(checkpoint_path), weights_only=True))


def _candidate(proposal: Proposal) -> Candidate:
    """The controller's candidate, or one standing in for a training it did not propose."""
    return proposal.candidate or Candidate(proposal.candidate_id, (), proposal.architecture)


def controller_of(searcher: ControllerSearcher) -> Controller:
    """The controller at the heart of `searcher`'s chain."""
    return searcher.chain.require(ControllerStage).controller
