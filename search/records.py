"""What the driver knows of each child while a search runs."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

__all__ = [
    "DEFAULT_TEST_METRIC",
    "ChildRecord",
    "LeaderboardRow",
    "SearchLog",
    "child_number",
    "child_run_name",
    "flatten_architecture",
    "leaderboard_frame",
    "rank_children",
]

DEFAULT_TEST_METRIC = "test_accuracy"
"""The test metric that sums a child up when its trainer names none."""


def child_run_name(number: int) -> str:
    """A child's MLflow run name and leaderboard label: ``child-007``."""
    return f"child-{number:03d}"


def child_number(run_name: str) -> int:
    """The child's number in its run name (the inverse of `child_run_name`)."""
    return int(run_name.removeprefix("child-"))


def flatten_architecture(architecture: dict[str, Any]) -> dict[str, Any]:
    """One entry per decision, named like the space's slots (``layers``, ``layers.0.units``)."""
    flat: dict[str, Any] = {}
    for key, value in architecture.items():
        if isinstance(value, list):
            flat[key] = len(value)
            for i, layer in enumerate(value):
                for sub, v in layer.items():
                    flat[f"{key}.{i}.{sub}"] = v
        else:
            flat[key] = value
    return flat


def rank_children(frame: pd.DataFrame) -> pd.DataFrame:
    """Children best first, each row with ``trainings`` (finished trainings of its architecture)
    and ``mean_reward`` (their mean reward). Trainings stopped early are counted only for an
    architecture that was never trained in full: their rewards are estimates.

    Children trained to the full budget before those stopped early (``stopped_epoch`` above 0);
    among them by reward, ties to fewer params; but when the frame holds confirmation runs
    (column ``confirmation``), the architectures they confirmed come first, by mean reward, each
    one's trainings by reward: the first row is then the best training of the architecture that
    did best on average, not the luckiest single training.
    """
    if frame.empty:
        return frame
    if "stopped_epoch" in frame:
        full = frame["stopped_epoch"].fillna(0).eq(0)
    else:
        full = pd.Series(True, index=frame.index)
    counted = full | ~full.groupby(frame["architecture"]).transform("any")
    frame = frame.assign(
        trainings=counted.groupby(frame["architecture"]).transform("sum").astype(int),
        mean_reward=frame["reward"].where(counted).groupby(frame["architecture"]).transform("mean"),
    )
    by_architecture = frame.groupby("architecture")
    if "confirmation" not in frame or not frame["confirmation"].any():
        order = frame.assign(_full=full).sort_values(
            ["_full", "reward", "params"], ascending=[False, False, True], kind="stable"
        )
        return order.drop(columns=["_full"]).reset_index(drop=True)
    confirmed = by_architecture["confirmation"].transform("any").astype(bool)
    key = frame["mean_reward"].where(confirmed, frame["reward"])
    order = frame.assign(_full=full, _confirmed=confirmed, _key=key).sort_values(
        ["_full", "_confirmed", "_key", "reward", "params"],
        ascending=[False, False, False, False, True],
        kind="stable",
    )
    return order.drop(columns=["_full", "_confirmed", "_key"]).reset_index(drop=True)


@dataclass
class LeaderboardRow:
    """One finished child on a leaderboard (`SearchLog.leaderboard`, `search.results`).

    Attributes:
        child: The child's number (its run is `child_run_name` of it).
        reward: What the controller was told (for a child stopped early, the estimate
            `search.schedulers.StoppedChildren.estimate`).
        test_metric: The test metric that sums the child up (``test_accuracy``, ``test_fd``).
        test: That metric's value.
        test_accuracy: The test accuracy, where the child has one.
        params: Parameters of one network.
        ensemble: Networks the kept model averages (0: one).
        train_seconds: Seconds its training took (a child stopped early: Tune's time from its
            start to its last report, its set-up included).
        included: Given by the search's config, not proposed by the controller.
        confirmation: An extra training of one of the best architectures.
        failure: Why training ended early with a penalised reward, or empty.
        run_id: The child's MLflow run.
        architecture: The architecture as JSON.
        stopped_epoch: The epoch it reached when a scheduler stopped it early; 0: trained
            to the full budget.
    """

    child: int
    reward: float | None
    test_metric: str
    test: float | None
    test_accuracy: float | None
    params: int | None
    ensemble: int
    train_seconds: float | None
    included: bool
    confirmation: bool
    failure: str
    run_id: str | None
    architecture: str
    stopped_epoch: int = 0

    @classmethod
    def build(
        cls,
        child: int,
        reward: float | None,
        metrics: dict[str, Any],
        test_metric: str,
        *,
        included: bool,
        confirmation: bool,
        failure: str,
        run_id: str | None,
        architecture: str,
        stopped_epoch: int = 0,
    ) -> LeaderboardRow:
        """The row of a child that reported `metrics` (the test values, ``params``, ...)."""
        params = metrics.get("params")
        return cls(
            child=child,
            reward=reward,
            test_metric=test_metric,
            test=metrics.get(test_metric),
            test_accuracy=metrics.get("test_accuracy"),
            params=None if params is None else int(params),
            ensemble=int(metrics.get("ensemble") or 0),
            train_seconds=metrics.get("train_seconds"),
            included=included,
            confirmation=confirmation,
            failure=failure,
            run_id=run_id,
            architecture=architecture,
            stopped_epoch=stopped_epoch,
        )


def leaderboard_frame(rows: list[LeaderboardRow]) -> pd.DataFrame:
    """The rows as a frame, ordered by `rank_children`."""
    return rank_children(pd.DataFrame([asdict(row) for row in rows]))


@dataclass
class ChildRecord:
    """One child: its proposal, where it is tracked and how it scored."""

    number: int
    trial_id: str
    candidate_id: int
    architecture: dict[str, Any]
    run_id: str | None = None
    status: str = "running"  # running | finished | stopped | failed | retried
    reward: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    has_model: bool = False
    included: bool = False  # given by the search's config, not proposed by the controller
    confirmation: bool = False  # an extra training of one of the best architectures
    test_metric: str = DEFAULT_TEST_METRIC  # the test metric that sums the child up
    failure: str = ""  # why training ended early with a penalised reward, or failed
    epoch_metrics: set[str] = field(default_factory=set)  # names logged once per epoch
    stopped_epoch: int = 0  # the epoch reached when stopped early; 0: trained in full

    def leaderboard_row(self) -> LeaderboardRow:
        """The child's row on the leaderboard."""
        return LeaderboardRow.build(
            self.number,
            self.reward,
            self.metrics,
            self.test_metric,
            included=self.included,
            confirmation=self.confirmation,
            failure=self.failure,
            run_id=self.run_id,
            architecture=json.dumps(self.architecture),
            stopped_epoch=self.stopped_epoch,
        )

    def state_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["epoch_metrics"] = sorted(self.epoch_metrics)
        return data

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> ChildRecord:
        return cls(**{**data, "epoch_metrics": set(data["epoch_metrics"])})


@dataclass
class SearchLog:
    """Children by trial id, proposals rejected before training, and the search's clock."""

    budget: int
    children: dict[str, ChildRecord] = field(default_factory=dict)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    reused: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, ChildRecord] = field(default_factory=dict)  # first child of each key
    started: float = field(default_factory=time.monotonic)
    first_done: float | None = None  # when the first child ended (after Ray's start-up)

    def add(
        self,
        trial_id: str,
        candidate_id: int,
        architecture: dict[str, Any],
        replaces: str | None = None,
    ) -> ChildRecord:
        """A new child; one that `replaces` an earlier trial's record takes its number."""
        old = self.children.pop(replaces, None) if replaces else None
        number = (
            old.number if old else 1 + max((c.number for c in self.children.values()), default=0)
        )
        record = ChildRecord(number, trial_id, candidate_id, architecture)
        self.children[trial_id] = record
        return record

    def state_dict(self) -> dict[str, Any]:
        """Everything known of the children, to go on after a resume."""
        return {
            "budget": self.budget,
            "children": [c.state_dict() for c in self.children.values()],
            "invalid": list(self.invalid),
            "reused": list(self.reused),
            "by_key": {k: c.trial_id for k, c in self.by_key.items()},
            "elapsed": self.elapsed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`; the clock goes on from the time already spent."""
        self.budget = int(state["budget"])
        records = [ChildRecord.from_state(c) for c in state["children"]]
        self.children = {c.trial_id: c for c in records}
        self.invalid, self.reused = list(state["invalid"]), list(state["reused"])
        self.by_key = {
            k: self.children[t] for k, t in state["by_key"].items() if t in self.children
        }
        self.started = time.monotonic() - float(state["elapsed"])
        self.first_done = None

    @property
    def ended(self) -> dict[str, str]:
        """Trial id -> how each child that ended did: finished, failed or retried."""
        return {t: c.status for t, c in self.children.items() if c.status != "running"}

    def count(self, status: str) -> int:
        return sum(1 for c in self.children.values() if c.status == status)

    @property
    def finished(self) -> list[ChildRecord]:
        """Children trained to the full budget."""
        return [c for c in self.children.values() if c.status == "finished"]

    @property
    def stopped(self) -> list[ChildRecord]:
        """Children a scheduler stopped early."""
        return [c for c in self.children.values() if c.status == "stopped"]

    @property
    def best(self) -> ChildRecord | None:
        """The leaderboard's first child (`rank_children`) with a finite reward."""
        scored = [c for c in self.finished if c.reward is not None and math.isfinite(c.reward)]
        if any(c.confirmation for c in scored):
            board = self.leaderboard()
            numbers = {c.number: c for c in scored}
            return next(numbers[n] for n in board["child"] if n in numbers)
        # ties go to the smaller model, as in the leaderboard
        return max(scored, key=lambda c: (c.reward, -(c.metrics.get("params") or 0)), default=None)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def leaderboard(self) -> pd.DataFrame:
        """Finished children, best reward first, then those stopped early; ``test`` holds each
        child's ``test_metric``."""
        return leaderboard_frame([c.leaderboard_row() for c in self.finished + self.stopped])
