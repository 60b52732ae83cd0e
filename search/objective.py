"""Custom objectives: search anything a callable can score, a lookup table included.

An objective maps an architecture (the plain dict a space decodes) to a reward (a number) or
to a dict of metrics (with a ``reward`` entry, or scored by a reward expression). From the CLI
it is named ``module:function``; the module is imported from the working directory first.

An objective that trains something may take a second argument, ``report``, and call it after
each epoch with that epoch's metrics (a dict with ``reward``, the reward so far): then
``--scheduler asha`` can stop it early, and its runs chart the epochs.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from ray import tune

__all__ = ["Objective", "ObjectiveError", "evaluate_child", "load_objective", "reports_epochs"]

Objective = Callable[..., "float | dict[str, Any]"]
"""``objective(architecture)`` or ``objective(architecture, report)``."""


class ObjectiveError(ValueError):
    """The objective cannot be found, or returned something other than a number or a dict."""


def load_objective(spec: str | Objective, search_path: str | None = None) -> Objective:
    """Resolve ``module:function`` (or pass a callable through)."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ObjectiveError(f"objective {spec!r}: expected 'module:function'")
    module_name, function_name = spec.split(":")
    path = search_path or os.getcwd()
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ObjectiveError(f"objective {spec!r}: cannot import {module_name!r} ({exc})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ObjectiveError(f"objective {spec!r}: {module_name} has no function {function_name!r}")
    return function


def reports_epochs(objective: Objective) -> bool:
    """Whether `objective` takes a second argument (``report``, called after each epoch)."""
    try:
        parameters = list(inspect.signature(objective).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def _epoch_report(metrics: dict[str, Any]) -> None:
    """One epoch of an objective that reports epochs, as Tune hears of a trainer's."""
    if not isinstance(metrics, dict) or not isinstance(metrics.get("reward"), (int, float)):
        raise ObjectiveError(f"report() takes a dict with a numeric 'reward', got {metrics!r}")
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    tune.report({**numbers, "final": False})


def as_metrics(value: Any) -> dict[str, Any]:
    """An objective's return value as a metrics dict."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"reward": float(value)}
    raise ObjectiveError(
        f"an objective must return a number or a dict of metrics, got {type(value).__name__}"
    )


def evaluate_child(config: dict[str, Any]) -> None:
    """Tune trainable for custom objectives: score one architecture, report once."""
    setup = config["setup"]  # a `search.child_setup.ChildSetup`
    objective = load_objective(setup.objective, setup.cwd)
    started = time.perf_counter()
    if reports_epochs(objective):
        value = objective(config["architecture"], _epoch_report)
    else:
        value = objective(config["architecture"])
    metrics = as_metrics(value)
    numbers = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    if "reward" not in numbers:
        if not setup.reward_expression:
            raise ObjectiveError(
                f"the objective returned {sorted(metrics)} without 'reward': return a number, "
                "add a 'reward' entry, or give a reward expression (--reward)"
            )
        numbers["reward"] = math.nan  # scored on the driver by the reward expression
    numbers["train_seconds"] = time.perf_counter() - started
    tune.report({**numbers, "final": True})
