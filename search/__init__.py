"""Orchestration: run searches on Ray Tune, track them in MLflow, load what they found.

Names load on first use, so that Ray workers importing `search.trainable` do not pay for
MLflow and the driver's machinery.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigError": "search.config",
    "SearchConfig": "search.config",
    "ResultsError": "search.results",
    "leaderboard": "search.results",
    "load_best": "search.results",
    "SearchResult": "search.runner",
    "run_search": "search.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")
