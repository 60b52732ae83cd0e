"""The searcher's stages: small steps between Ray Tune and the controller, each with its state.

A chain is built innermost first, each stage wrapping the next one in:

    FailureStop -> Confirmation -> TimeBudget -> Budget -> Deduplication -> IncludeQueue
        -> ValidityFilter -> ControllerStage

`propose()` returns the next training (a `Proposal`), `WAIT` (nothing now, ask again later) or
`FINISHED`; `done(proposal, outcome)` hears how a training ended and passes it inwards unless
the stage answers it itself. Each stage's `state_dict()` holds everything it learned, so the
chain's saved state (`chain_state`) is complete by construction: a stage that adds state adds
it to its own `state_dict`, and the shared tests round-trip every stage with work
outstanding. The design follows NNI's strategy middlewares and Ray Tune's wrapper searchers.
"""

from __future__ import annotations

import abc
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from controller import Candidate, Controller

__all__ = [
    "FINISHED",
    "WAIT",
    "Budget",
    "Confirmation",
    "ControllerStage",
    "Deduplication",
    "FailureStop",
    "IncludeQueue",
    "Outcome",
    "Proposal",
    "SearchError",
    "Stage",
    "TimeBudget",
    "ValidityFilter",
    "chain_stages",
]

FINISHED = "FINISHED"
"""Nothing more to train (Ray Tune's ``Searcher.FINISHED``)."""
WAIT = None
"""Nothing to train now; ask again later."""

SEED_STRIDE = 100003
"""Child training seeds are ``seed * SEED_STRIDE + offset + id``: apart for every search seed."""


class SearchError(RuntimeError):
    """The search cannot go on (e.g. the controller proposes nothing buildable)."""


@dataclass
class Proposal:
    """One training to run: an architecture and where it came from.

    Attributes:
        architecture: The architecture to train.
        key: Its canonical key (``space.key``).
        candidate_id: The controller's candidate id; negative for trainings it did not propose.
        train_seed: Seed of the child's training.
        kind: ``proposed`` (by the controller), ``included`` (from the config) or
            ``confirmation`` (an extra training of one of the best architectures).
        candidate: The controller's candidate (``proposed`` only).
        attempt: 1, or 2 when trained again after its worker died.
    """

    architecture: dict[str, Any]
    key: str
    candidate_id: int
    train_seed: int
    kind: str = "proposed"
    candidate: Candidate | None = None
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["candidate"] = None if self.candidate is None else self.candidate.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        candidate = data.get("candidate")
        return cls(
            **{**data, "candidate": None if candidate is None else Candidate.from_dict(candidate)}
        )


@dataclass(frozen=True)
class Outcome:
    """How a training ended.

    Attributes:
        reward: Its reward; None when it failed (an error, a divergence, a timeout).
        error: One line when an error ended it (counted by `FailureStop`); empty otherwise.
        stopped: An early-stopping scheduler stopped it: `reward` is an estimate.
    """

    reward: float | None
    error: str = ""
    stopped: bool = False

    @property
    def finite_reward(self) -> float | None:
        """The reward when it is a finite number, else None."""
        return self.reward if self.reward is not None and math.isfinite(self.reward) else None

    @property
    def ok(self) -> bool:
        return self.finite_reward is not None


StageT = TypeVar("StageT", bound="Stage")


class Stage(abc.ABC):
    """One concern of the searcher, wrapping the stage inside it."""

    def __init__(self, inner: Stage | None = None):
        self.inner = inner

    @abc.abstractmethod
    def propose(self) -> Proposal | str | None:
        """The next training, `WAIT` or `FINISHED`."""

    def done(self, proposal: Proposal, outcome: Outcome) -> None:
        """A training this stage proposed has ended; by default the inner stage hears of it."""
        if self.inner is not None:
            self.inner.done(proposal, outcome)

    def planned(self) -> int | None:
        """Trainings the chain will propose in all, when this stage decides it (else inner's)."""
        return None if self.inner is None else self.inner.planned()

    def state_dict(self) -> dict[str, Any]:
        """This stage's own state (plain data; `torch.save` with ``weights_only`` loads it)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what `state_dict` returned."""

    def stages(self) -> list[Stage]:
        """This stage and every stage inside it, outermost first."""
        return [self, *([] if self.inner is None else self.inner.stages())]

    def find(self, kind: type[StageT]) -> StageT | None:
        """The first stage of type `kind` in this chain."""
        return next((s for s in self.stages() if isinstance(s, kind)), None)

    def require(self, kind: type[StageT]) -> StageT:
        """The first stage of type `kind` in this chain; LookupError when it has none."""
        stage = self.find(kind)
        if stage is None:
            raise LookupError(f"the chain has no {kind.__name__} stage")
        return stage

    def chain_state(self) -> dict[str, Any]:
        """Every stage's state, by stage name."""
        return {type(s).__name__: s.state_dict() for s in self.stages()}

    def load_chain_state(self, state: dict[str, Any]) -> None:
        """Restore `chain_state()` into a chain of the same stages."""
        names = [type(s).__name__ for s in self.stages()]
        if sorted(names) != sorted(state):
            raise ValueError(f"saved stages {sorted(state)} do not match this chain's {names}")
        for stage in self.stages():
            stage.load_state_dict(state[type(stage).__name__])


class _Wrapper(Stage):
    """A stage around an inner one (every stage but the innermost)."""

    inner: Stage

    def __init__(self, inner: Stage):
        super().__init__(inner)


class ControllerStage(Stage):
    """The innermost stage: ``propose`` asks the controller, ``done`` tells it."""

    def __init__(self, controller: Controller, key_of: Callable[[dict[str, Any]], str], seed=0):
        super().__init__(None)
        self.controller = controller
        self.key_of = key_of
        self.seed = seed

    def propose(self) -> Proposal:
        candidate = self.controller.ask()
        return Proposal(
            candidate.architecture,
            self.key_of(candidate.architecture),
            candidate.id,
            self.seed * SEED_STRIDE + candidate.id,
            candidate=candidate,
        )

    def done(self, proposal: Proposal, outcome: Outcome) -> None:
        if proposal.candidate is not None:
            self.controller.tell(proposal.candidate, outcome.reward)

    def planned(self) -> int | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])


class ValidityFilter(_Wrapper):
    """Proposals that cannot be built are told `invalid_reward` at once and never trained.

    After `max_in_row` such proposals in a row the search ends with `SearchError`.
    """

    def __init__(
        self,
        inner: Stage,
        validate: Callable[[dict[str, Any]], str | None],
        invalid_reward: float = 0.0,
        on_invalid: Callable[[Proposal, str], None] | None = None,
        max_in_row: int = 1000,
        keep_keys: bool = False,
    ):
        super().__init__(inner)
        self.validate = validate
        self.invalid_reward = invalid_reward
        self.on_invalid = on_invalid or (lambda proposal, reason: None)
        self.max_in_row = max_in_row
        self.keep_keys = keep_keys
        self.invalid_keys: set[str] = set()  # with keep_keys: counted by `Deduplication`

    def propose(self) -> Proposal | str | None:
        reason = None
        for _ in range(self.max_in_row):
            proposal = self.inner.propose()
            if not isinstance(proposal, Proposal):
                return proposal
            reason = self.validate(proposal.architecture)
            if reason is None:
                return proposal
            if self.keep_keys:
                self.invalid_keys.add(proposal.key)
            self.inner.done(proposal, Outcome(self.invalid_reward))
            self.on_invalid(proposal, reason)
        raise SearchError(
            f"the controller proposed {self.max_in_row} architectures in a row that cannot be "
            f"built for this task (last reason: {reason}); too few of the space's can be: "
            "narrow the space to what the task allows and start again with --new"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"invalid_keys": sorted(self.invalid_keys)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.invalid_keys = set(state.get("invalid_keys", []))  # absent from older states


class IncludeQueue(_Wrapper):
    """Architectures from the config train first; the controller never hears of them."""

    def __init__(self, inner: Stage, architectures: list[dict[str, Any]], key_of, seed: int = 0):
        super().__init__(inner)
        self.queue = list(architectures)
        self.key_of = key_of
        self.seed = seed
        self.count = 0

    def propose(self) -> Proposal | str | None:
        if not self.queue:
            return self.inner.propose()
        architecture = self.queue.pop(0)
        self.count += 1
        candidate_id = -self.count  # never a controller's id (those count up from 0)
        return Proposal(
            architecture,
            self.key_of(architecture),
            candidate_id,
            self.seed * SEED_STRIDE + 50000 - candidate_id,
            kind="included",
        )

    def done(self, proposal: Proposal, outcome: Outcome) -> None:
        if proposal.kind != "included":
            self.inner.done(proposal, outcome)

    def state_dict(self) -> dict[str, Any]:
        return {"queue": list(self.queue), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.queue, self.count = list(state["queue"]), int(state["count"])


class Deduplication(_Wrapper):
    """An architecture proposed again needs no new training.

    - ``reuse``: a known architecture is told its first training's reward at once; one that
      is training now waits and is told the same reward when that training ends;
    - ``retrain``: it trains again (a new seed) and is told the mean of all its trainings.

    A training stopped early by a scheduler gave an estimate, not a reward: it stands for the
    architecture only until one of its trainings ends in full.

    `on_reuse` hears of every proposal answered without training. The chain is `FINISHED`
    (`exhausted`) after `max_in_row` known proposals in a row (the controller has converged)
    or, with ``reuse`` and the `space_size`, once every architecture of the space has a
    reward, is training, or was turned away by `ValidityFilter` (which keeps their keys for
    this): nothing new is left to train. An architecture whose training failed is not counted:
    proposed again, it trains again.
    """

    def __init__(
        self,
        inner: Stage,
        mode: str = "reuse",
        on_reuse: Callable[[Proposal, float | None], None] | None = None,
        max_in_row: int = 1000,
        space_size: int | None = None,
    ):
        super().__init__(inner)
        if mode not in ("reuse", "retrain"):
            raise ValueError(f"duplicates must be 'reuse' or 'retrain', got {mode!r}")
        self.mode = mode
        self.on_reuse = on_reuse or (lambda proposal, reward: None)
        self.max_in_row = max_in_row
        self.space_size = space_size
        self.rewards: dict[str, list[float]] = {}  # key -> rewards of full trainings
        self.estimates: dict[str, list[float]] = {}  # key -> of trainings stopped early
        self.training: Counter[str] = Counter()  # key -> trainings in flight
        self.waiting: dict[str, list[Proposal]] = {}  # key in training -> its duplicates
        self.exhausted = False

    def propose(self) -> Proposal | str | None:
        for _ in range(self.max_in_row):
            if self.space_spent():
                break
            proposal = self.inner.propose()
            if not isinstance(proposal, Proposal):
                return proposal
            key = proposal.key
            if self.mode == "reuse" and self._known(key):
                reward = self._told(key, None)
                self.inner.done(proposal, Outcome(reward))
                self.on_reuse(proposal, reward)
                continue
            if self.mode == "reuse" and self.training[key]:
                self.waiting.setdefault(key, []).append(proposal)
                continue
            self.training[key] += 1
            return proposal
        self.exhausted = True
        return FINISHED  # only known architectures: nothing new to train

    def space_spent(self) -> bool:
        """Whether every architecture of a space of known size has a reward, is training, or
        cannot be built."""
        if self.mode != "reuse" or self.space_size is None:
            return False
        validity = self.find(ValidityFilter)
        invalid = validity.invalid_keys if validity is not None else set()
        known = set(self.rewards) | set(self.estimates)
        if len(known) + len(self.training) + len(invalid) < self.space_size:
            return False  # the union below cannot reach it
        return len(known | set(self.training) | invalid) >= self.space_size

    def _known(self, key: str) -> list[float]:
        """The rewards of `key`'s full trainings, else the estimates of its stopped ones."""
        return self.rewards.get(key) or self.estimates.get(key, [])

    def _told(self, key: str, reward: float | None) -> float | None:
        """Reuse: the first training's reward; retrain: the mean of all of them (of those
        trained in full, when there are any)."""
        history = self._known(key)
        if not history:
            return reward
        return history[0] if self.mode == "reuse" else sum(history) / len(history)

    def done(self, proposal: Proposal, outcome: Outcome) -> None:
        key = proposal.key
        self.training[key] -= 1
        if self.training[key] <= 0:
            del self.training[key]
        reward = outcome.finite_reward
        if reward is not None:
            kept = self.estimates if outcome.stopped else self.rewards
            kept.setdefault(key, []).append(float(reward))
        estimate = outcome.stopped and not self.rewards.get(key)
        told = Outcome(self._told(key, reward), outcome.error, estimate)
        self.inner.done(proposal, told)
        for duplicate in self.waiting.pop(key, []):
            self.inner.done(duplicate, Outcome(told.reward))
            self.on_reuse(duplicate, told.reward)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rewards": {k: list(v) for k, v in self.rewards.items()},
            "estimates": {k: list(v) for k, v in self.estimates.items()},
            "training": dict(self.training),
            "waiting": {k: [p.to_dict() for p in v] for k, v in self.waiting.items()},
            "exhausted": self.exhausted,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rewards = {k: [float(r) for r in v] for k, v in state["rewards"].items()}
        self.estimates = {  # absent from states saved before estimates were kept apart
            k: [float(r) for r in v] for k, v in state.get("estimates", {}).items()
        }
        self.training = Counter({k: int(n) for k, n in state["training"].items()})
        self.waiting = {k: [Proposal.from_dict(p) for p in v] for k, v in state["waiting"].items()}
        self.exhausted = bool(state["exhausted"])


class Budget(_Wrapper):
    """At most `budget` trainings; `FINISHED` after them (the stop rule of the search)."""

    def __init__(self, inner: Stage, budget: int):
        super().__init__(inner)
        self.budget = budget
        self.proposed = 0
        self.ran_out = False  # the inner stages finished before the budget

    def propose(self) -> Proposal | str | None:
        if self.proposed >= self.budget or self.ran_out:
            return FINISHED
        proposal = self.inner.propose()
        if proposal == FINISHED:
            self.ran_out = True
        elif isinstance(proposal, Proposal):
            self.proposed += 1
        return proposal

    def planned(self) -> int:
        return self.proposed if self.ran_out else max(self.budget, self.proposed)

    def state_dict(self) -> dict[str, Any]:
        return {"proposed": self.proposed, "ran_out": self.ran_out}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.proposed, self.ran_out = int(state["proposed"]), bool(state["ran_out"])


class TimeBudget(_Wrapper):
    """No new training once the next could not end within `seconds` of search time
    (`clock()`, counted across resumes), keeping the time that the stages outside need for
    `runs` more trainings of each of the `confirm` best architectures (confirmation), run
    `parallel` at a time; `FINISHED` then.

    A new training may take as long as the longest that ended so far, from its proposal to its
    end (Tune asks for a training when a slot is free, so that is its wall-clock time); a
    confirmation run, as long as its architecture's own training took."""

    def __init__(
        self,
        inner: Stage,
        seconds: float,
        clock: Callable[[], float],
        parallel: int = 1,
        confirm: int = 0,
        runs: int = 0,
    ):
        super().__init__(inner)
        self.seconds, self.clock = seconds, clock
        self.parallel, self.confirm, self.runs = max(1, parallel), confirm, runs
        self.longest = 0.0
        self.trained: dict[str, tuple[float, float]] = {}  # key -> (reward, seconds), in full
        self.since: dict[int, float] = {}  # candidate id -> when it was proposed
        self.proposed = 0
        self.ran_out = False

    def left(self) -> float:
        """Seconds of search time left (negative once past)."""
        return self.seconds - self.clock()

    def confirmation_seconds(self) -> float:
        """How long the confirmation would take if the search ended now: the best
        architectures so far trained `runs` more times each, `parallel` at a time (the longest
        so far stands in for those not trained in full yet)."""
        if not self.confirm or not self.runs:
            return 0.0
        best = sorted(self.trained.values(), reverse=True)[: self.confirm]
        seconds = [s for _, s in best] + [self.longest] * (self.confirm - len(best))
        return max(self.runs * sum(seconds) / self.parallel, max(seconds))

    def propose(self) -> Proposal | str | None:
        if self.ran_out:
            return FINISHED
        # also once past: both terms are >= 0
        if self.left() <= self.longest + self.confirmation_seconds():
            self.ran_out = True
            return FINISHED
        proposal = self.inner.propose()
        if isinstance(proposal, Proposal):
            self.since[proposal.candidate_id] = self.clock()
            self.proposed += 1
        return proposal

    def done(self, proposal: Proposal, outcome: Outcome) -> None:
        started = self.since.pop(proposal.candidate_id, None)
        if started is not None:
            took = self.clock() - started
            self.longest = max(self.longest, took)
            reward = outcome.finite_reward
            if reward is not None and not outcome.stopped:
                self.trained[proposal.key] = (reward, took)
        self.inner.done(proposal, outcome)

    def planned(self) -> int | None:
        return self.proposed if self.ran_out else self.inner.planned()

    def state_dict(self) -> dict[str, Any]:
        trained = {k: list(v) for k, v in self.trained.items()}
        return {"longest": self.longest, "proposed": self.proposed, "trained": trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.longest, self.proposed = float(state["longest"]), int(state["proposed"])
        self.trained = {  # absent from states saved before it was kept
            k: (float(r), float(t)) for k, (r, t) in state.get("trained", {}).items()
        }
        self.since = {}  # trainings cut off train again, timed afresh
        self.ran_out = False  # a resume may give more time


class Confirmation(_Wrapper):
    """Once the inner stages are finished and every training has ended, the `confirm`
    architectures of highest mean reward train `runs` more times each (new seeds), so that
    the best is chosen on several trainings rather than its luckiest one. The controller is
    not told of these trainings."""

    def __init__(self, inner: Stage, confirm: int, runs: int = 2, seed: int = 0):
        super().__init__(inner)
        self.confirm, self.runs, self.seed = confirm, runs, seed
        self.out = 0  # trainings proposed and not ended
        self.rewards: dict[str, list[float]] = {}
        self.architectures: dict[str, dict[str, Any]] = {}
        self.queue: list[str] | None = None  # keys still to confirm, once planned
        self.confirmed = 0

    def propose(self) -> Proposal | str | None:
        if self.queue is None:
            proposal = self.inner.propose()
            if proposal != FINISHED:
                if isinstance(proposal, Proposal):
                    self.out += 1
                    self.architectures.setdefault(proposal.key, proposal.architecture)
                return proposal
            if self.out:
                return WAIT  # the ranking is not final until every training has ended
            means = {k: sum(r) / len(r) for k, r in self.rewards.items() if r}
            best = sorted(means, key=means.__getitem__, reverse=True)[: self.confirm]
            self.queue = [k for k in best for _ in range(self.runs)]
        if not self.queue:
            return FINISHED
        key = self.queue.pop(0)
        self.confirmed += 1
        self.out += 1
        return Proposal(
            self.architectures[key],
            key,
            -(100000 + self.confirmed),  # apart from controllers' and included ids
            self.seed * SEED_STRIDE + 70000 + self.confirmed,
            kind="confirmation",
        )

    def done(self, proposal: Proposal, outcome: Outcome) -> None:
        self.out -= 1
        reward = outcome.finite_reward
        if reward is not None and not outcome.stopped:  # ranked on full trainings only
            self.rewards.setdefault(proposal.key, []).append(float(reward))
        if proposal.kind != "confirmation":
            self.inner.done(proposal, outcome)

    def planned(self) -> int:
        inner = self.inner.planned() or 0
        if self.queue is None:
            return inner + self.confirm * self.runs
        return inner + self.confirmed + len(self.queue)

    def state_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "rewards": {k: list(v) for k, v in self.rewards.items()},
            "architectures": dict(self.architectures),
            "queue": None if self.queue is None else list(self.queue),
            "confirmed": self.confirmed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.out = int(state["out"])
        self.rewards = {k: [float(r) for r in v] for k, v in state["rewards"].items()}
        self.architectures = dict(state["architectures"])
        self.queue = None if state["queue"] is None else list(state["queue"])
        self.confirmed = int(state["confirmed"])


class FailureStop(_Wrapper):
    """After `max_in_row` trainings in a row ended by an error (not a divergence), the chain is
    `FINISHED` and `stopped` says why; 0 never stops. A resumed search counts afresh."""

    def __init__(self, inner: Stage, max_in_row: int = 5):
        super().__init__(inner)
        self.max_in_row = max_in_row
        self.errors: list[str] = []  # the errors of the current run of failures
        self.stopped = ""

    def propose(self) -> Proposal | str | None:
        if self.stopped:
            return FINISHED
        return self.inner.propose()

    def done(self, proposal: Proposal, outcome: Outcome) -> None:
        if outcome.error:
            self.errors.append(outcome.error)
            if self.max_in_row and len(self.errors) >= self.max_in_row:
                self.stopped = f"{len(self.errors)} children failed in a row; the last: " + (
                    outcome.error
                )
        elif outcome.ok:
            self.errors = []
        self.inner.done(proposal, outcome)

    def state_dict(self) -> dict[str, Any]:
        return {"errors": list(self.errors), "stopped": self.stopped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.errors, self.stopped = list(state["errors"]), str(state["stopped"])

    def reset(self) -> None:
        """Count failures afresh (a resume after the cause was fixed)."""
        self.errors, self.stopped = [], ""


SPENDABLE = 10**6
"""The largest space whose every architecture a search may propose (`Deduplication`)."""


@dataclass
class ChainSettings:
    """What `chain_stages` builds from (see each stage for the meaning)."""

    validate: Callable[[dict[str, Any]], str | None]
    key_of: Callable[[dict[str, Any]], str]
    seed: int = 0
    budget: int | None = None
    time_budget: float | None = None
    clock: Callable[[], float] | None = None
    parallel: int = 1
    duplicates: str = "reuse"
    include: list[dict[str, Any]] = field(default_factory=list)
    confirm: int = 0
    confirm_runs: int = 2
    invalid_reward: float = 0.0
    max_skipped_in_row: int = 1000
    space_size: int | None = None
    max_failures: int = 0
    on_invalid: Callable[[Proposal, str], None] | None = None
    on_reuse: Callable[[Proposal, float | None], None] | None = None


def chain_stages(controller: Controller, settings: ChainSettings) -> Stage:
    """The searcher's chain around `controller`, outermost stage returned."""
    s = settings
    if s.confirm and s.budget is None:
        raise ValueError("confirm needs the budget of trainings before it")
    stage: Stage = ControllerStage(controller, s.key_of, s.seed)
    # a space of more architectures than this is never spent: no keys are kept to count it
    size = s.space_size if s.space_size is not None and s.space_size <= SPENDABLE else None
    keep = size is not None and s.duplicates == "reuse"
    stage = ValidityFilter(
        stage, s.validate, s.invalid_reward, s.on_invalid, s.max_skipped_in_row, keep_keys=keep
    )
    stage = IncludeQueue(stage, s.include, s.key_of, s.seed)
    stage = Deduplication(stage, s.duplicates, s.on_reuse, s.max_skipped_in_row, size)
    if s.budget is not None:
        stage = Budget(stage, s.budget)
    if s.time_budget is not None:
        if s.clock is None:
            raise ValueError("a time budget needs the search's clock")
        stage = TimeBudget(stage, s.time_budget, s.clock, s.parallel, s.confirm, s.confirm_runs)
    if s.confirm:
        stage = Confirmation(stage, s.confirm, s.confirm_runs, s.seed)
    return FailureStop(stage, s.max_failures)
