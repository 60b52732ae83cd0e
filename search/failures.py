"""A child that fails ends with a one-line reason and its full traceback, never a crash.

The trainables run under `reporting_failures`: an exception becomes the child's final result
(``error``: one line, ``traceback``: the whole text), so that Tune's own trial errors are left
to what the child's code cannot catch (a worker process that died, a lost node), which the
searcher trains again once.
"""

from __future__ import annotations

import functools
import math
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["ChildFailure", "one_line", "reporting_failures"]

MAX_REASON = 500
"""Characters of a one-line reason kept (the traceback keeps everything)."""


class ChildFailure(Exception):
    """A child cannot go on; the message is the whole reason, shown as it is."""


def _out_of_memory(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover (torch is a dependency)
        pass
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def one_line(exc: BaseException) -> str:
    """Why `exc` ended a child, in one line: ``out of memory: ...``, or its type and message."""
    text = " ".join(str(exc).split())
    if isinstance(exc, ChildFailure):
        line = text
    elif _out_of_memory(exc):
        line = f"out of memory: {text or type(exc).__name__}"
    else:
        line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line[:MAX_REASON]


def reporting_failures(trainable: Callable[[dict[str, Any]], None]):
    """Wrap a Tune function trainable so that an exception is reported as a failed result
    (and its worker fetches results with short waits, `search.tune_polling`)."""

    @functools.wraps(trainable)
    def run(config: dict[str, Any]) -> None:
        from ray import tune

        from search.tune_polling import shorten_result_waits

        shorten_result_waits()
        try:
            trainable(config)
        except Exception as exc:
            tune.report(
                {
                    "reward": math.nan,
                    "final": True,
                    "error": one_line(exc),
                    "traceback": traceback.format_exc(),
                }
            )

    return run
