"""Live progress of a search on the terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ray import tune

from search.records import SearchLog

__all__ = ["ProgressCallback", "format_seconds"]


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressCallback(tune.Callback):
    """One line per finished or failed child, and a heartbeat line while children train.

    A line reads: children done / running / failed of the budget, the best reward so far,
    time elapsed and an estimate of the time left (with a `time_budget`, what is left of it).
    """

    def __init__(
        self,
        log: SearchLog,
        stream: TextIO | None = None,
        heartbeat: float = 30.0,
        time_budget: float | None = None,
    ):
        self.log = log
        self.time_budget = time_budget
        self.stream = stream or sys.stdout
        self.heartbeat = heartbeat
        self._last_line = 0.0
        self._ended_at_first = 0  # children ended when the first of this run ended

    def status(self) -> str:
        log = self.log
        done, failed = log.count("finished") + log.count("stopped"), log.count("failed")
        running = log.count("running")
        stopped = f" ({log.count('stopped')} stopped early)" if log.count("stopped") else ""
        best = log.best
        best_text = f"{best.reward:.4f} (child {best.number})" if best else "-"
        ended = done + failed
        remaining = log.budget - ended
        if remaining == 0:
            eta = "finishing"
        elif self.time_budget is not None:
            left = max(0.0, self.time_budget - log.elapsed)
            eta = f"{format_seconds(left)} of {format_seconds(self.time_budget)} left"
        elif log.first_done is not None and ended - self._ended_at_first >= 2:
            # the rate after the first child (of this run) leaves out Ray's start-up
            per_child = (time.monotonic() - log.first_done) / (ended - self._ended_at_first)
            eta = f"~{format_seconds(per_child * remaining)} left"
        else:
            eta = "estimating time left"
        return (
            f"[{done + failed:>{len(str(log.budget))}}/{log.budget}] done {done}{stopped}, running "
            f"{running}, failed {failed}, skipped {len(log.invalid)} invalid + {len(log.reused)} "
            f"known | best {best_text}"
            f" | {format_seconds(log.elapsed)} elapsed, {eta}"
        )

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self._last_line = time.monotonic()

    def _child_ended(self) -> None:
        if self.log.first_done is None:
            self.log.first_done = time.monotonic()
            self._ended_at_first = sum(
                self.log.count(status) for status in ("finished", "stopped", "failed")
            )

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._child_ended()
        record = self.log.children.get(trial.trial_id)
        if record is None:
            return
        if record.status == "failed":
            self._print(f"child {record.number:>3} FAILED: {record.error}   {self.status()}")
            return
        reward = "-" if record.reward is None else f"{record.reward:.4f}"
        if record.status == "stopped":
            reward = f"{reward} (stopped at epoch {record.stopped_epoch}, estimated)"
        self._print(f"child {record.number:>3} reward {reward}   {self.status()}")

    def on_trial_error(self, iteration, trials, trial, **info):
        record = self.log.children.get(trial.trial_id)
        if record is None:
            return
        if record.status == "retried":
            self._print(
                f"child {record.number:>3} {record.failure or 'its worker died'}: training it again"
            )
            return
        self._child_ended()
        self._print(f"child {record.number:>3} FAILED: {record.error}   {self.status()}")

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self._last_line >= self.heartbeat:
            self._print(f"          {self.status()}")
