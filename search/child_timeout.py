"""`--child-timeout`: a child that trains too long is stopped and counted as failed."""

from __future__ import annotations

import time

import ray
from ray import tune

__all__ = ["ChildTimeout"]


class ChildTimeout(tune.Callback):
    """Ends the worker of every child running longer than `seconds` (measured on the driver
    from the child's start); the searcher then counts the child as failed, not as a worker
    that died (which it would train again)."""

    def __init__(self, searcher, seconds: float):
        self.searcher = searcher
        self.seconds = float(seconds)
        self.started: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.monotonic()

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        for trial in trials:
            started = self.started.get(trial.trial_id)
            if started is None or now - started < self.seconds:
                continue
            actor = trial.temporary_state.ray_actor
            if trial.status != "RUNNING" or actor is None:
                continue
            self.searcher.timed_out[trial.trial_id] = self.seconds
            del self.started[trial.trial_id]
            ray.kill(actor, no_restart=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.started.pop(trial.trial_id, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.started.pop(trial.trial_id, None)
