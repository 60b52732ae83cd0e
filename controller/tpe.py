"""Tree-structured Parzen Estimator (Bergstra et al. 2011) through Optuna's ask/tell interface.

Each ask is an Optuna trial, suggested define-by-run: the space is walked with
`space.next_slot(prefix)` and each active decision is one
`trial.suggest_categorical(slot.name, [0, 1, ..., n - 1])` (its action indices), so decisions
switched off by a count or a `when` are simply never suggested, as TPE's conditional spaces
expect. Each tell completes its trial (`study.tell`); outstanding trials are RUNNING, and
Optuna's TPE treats them with its constant liar (set explicitly: Optuna's default only from
5.0), so parallel children are not all drawn from the same spot.

Determinism and state: the sampler is rebuilt before every ask, seeded with
(seed, ask number). Its proposal then depends only on the seed, the ask number and the trials
so far, so the state is plain data: the trials (number, params, state, value), and a restored
controller rebuilds the study by adding them back in order (`study.add_trial`) and continues
exactly as the saved one would have, outstanding (RUNNING) trials included.

Failed children (reward None, NaN or +-inf) are told to Optuna as FAIL trials, which TPE
leaves out of its model (so they are skipped; counted in `failed`).

Defaults are Optuna's (random startup trials, then expected-improvement candidates): they are
meant for budgets of tens to hundreds of trials, which is what a search here has. Measured:
benchmarks/RESULTS.md#tpe.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from controller.base import Candidate, Controller, finite_reward
from controller.registry import register_controller


@dataclass
class TPEOptions:
    """Options of the `tpe` controller (passed to `optuna.samplers.TPESampler`)."""

    n_startup_trials: int = 10
    """Random trials before TPE models the rewards (Optuna's default)."""
    n_ei_candidates: int = 24
    """Candidates drawn per decision to pick the best expected improvement (Optuna's)."""

    def __post_init__(self) -> None:
        for name in ("n_startup_trials", "n_ei_candidates"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value}")
            setattr(self, name, int(value))


@register_controller("tpe")
class TPE(Controller):
    """Optuna's TPE sampler over the space's decisions; see the module docstring."""

    Options = TPEOptions

    def __init__(self, space, seed: int = 0, **options) -> None:
        super().__init__(space, seed=seed, **options)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial
        self._distributions = {
            slot.name: CategoricalDistribution(list(range(len(slot.choices))))
            for slot in space.slots
        }
        self._new_study()
        self._trial_of: dict[int, int] = {}  # candidate id -> trial number
        self._failed = 0

    def _new_study(self) -> None:
        self._study = optuna.create_study(direction="maximize")

    def _sampler(self) -> optuna.samplers.TPESampler:
        """A sampler seeded with (seed, ask number): see the module docstring."""
        seed = int(np.random.SeedSequence([self.seed, self._next_id]).generate_state(1)[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=self.options.n_startup_trials,
                n_ei_candidates=self.options.n_ei_candidates,
                # outstanding asks count as losses: Optuna's default only from 5.0 on
                constant_liar=True,
            )

    def ask(self) -> Candidate:
        self._study.sampler = self._sampler()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self._study.ask()
            actions: list[int] = []
            while (slot := self.space.next_slot(actions)) is not None:
                actions.append(
                    int(trial.suggest_categorical(slot.name, list(range(len(slot.choices)))))
                )
        candidate = self._candidate(actions, trial=trial.number)
        self._trial_of[candidate.id] = trial.number
        return candidate

    def tell(self, candidate: Candidate, reward: float | None) -> None:
        candidate = self._settle(candidate)
        number = self._trial_of.pop(candidate.id)
        value = finite_reward(reward)
        if value is None:
            self._failed += 1
            self._study.tell(number, state=TrialState.FAIL)
        else:
            self._study.tell(number, value)

    def _state_dict(self) -> dict:
        trials = [
            {
                "params": {k: int(v) for k, v in t.params.items()},
                "state": t.state.name,
                "value": t.value,
                # an enqueued trial not asked yet (a warm start's): its params to ask
                **({"fixed": t.system_attrs["fixed_params"]} if t.state.name == "WAITING" else {}),
            }
            for t in self._study.get_trials(deepcopy=False)
        ]
        return {
            "trials": trials,  # in trial-number order
            "trial_of": [[cid, n] for cid, n in self._trial_of.items()],
            "failed": self._failed,
        }

    def _load_state_dict(self, state: dict) -> None:
        self._new_study()
        for t in state["trials"]:
            params = {k: int(v) for k, v in t["params"].items()}
            self._study.add_trial(
                create_trial(
                    state=TrialState[t["state"]],
                    value=None if t["value"] is None else float(t["value"]),
                    params=params,
                    distributions={k: self._distributions[k] for k in params},
                    system_attrs={"fixed_params": t["fixed"]} if "fixed" in t else None,
                )
            )
        self._trial_of = {int(cid): int(n) for cid, n in state["trial_of"]}
        self._failed = int(state["failed"])

    def stats(self) -> dict[str, float]:
        """Counters plus the number of failed trials."""
        return {**super().stats(), "failed": float(self._failed)}

    def _warm_start(self, state: dict, shared) -> str:
        """The best finished trials, as many as the random startup trials (`n_startup_trials`),
        with the params of the shared decisions, enqueued: they are asked first, in place of
        random startup trials, and TPE models the rewards they get here. The other search's
        values are not carried: on another task their scale differs, and a model fitted to them
        would rank every trial of this search below (or above) all of theirs."""
        choices = shared.by_source_name()
        finished = [t for t in state["algorithm"]["trials"] if t["state"] == "COMPLETE"]
        queued: list[dict[str, int]] = []
        for t in sorted(finished, key=lambda t: -float(t["value"])):  # stable: earlier on ties
            params = {
                name: choices[name][int(c)]
                for name, c in t["params"].items()
                if int(c) in choices.get(name, {})
            }
            if params and params not in queued:
                queued.append(params)
            if len(queued) == self.options.n_startup_trials:
                break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for params in queued:
                self._study.enqueue_trial(params)
        return f"its {len(queued)} best architectures, asked first instead of random ones"
