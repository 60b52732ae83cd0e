"""Plain-text views of architectures and leaderboards for the terminal."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from search.records import child_run_name

__all__ = ["architecture_summary", "format_leaderboard"]

_SHORT = {True: "T", False: "F", None: "-"}


def _short(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return _SHORT[value]
    return str(value)


def architecture_summary(architecture: dict[str, Any]) -> str:
    """One line: top-level choices as ``k=v``; a repeat block as its layers' values in brackets.

    >>> architecture_summary({"cell": "gru", "layers": [{"units": 40, "activation": "tanh"}]})
    'cell=gru layers=[40 tanh]'
    """
    parts = []
    for key, value in architecture.items():
        if isinstance(value, list):
            layers = " ".join(
                "[" + " ".join(_short(v) for v in layer.values()) + "]" for layer in value
            )
            parts.append(f"{key}={layers}")
        else:
            parts.append(f"{key}={_short(value)}")
    return " ".join(parts)


def format_leaderboard(frame: pd.DataFrame, top: int = 10) -> str:
    """The first `top` rows: rank, child, reward, test metric, params, seconds, architecture.

    The test column is each child's ``test_metric`` (accuracy unless the frame says otherwise),
    headed by its name when every row shares it; a child given by the config is marked ``*``,
    one whose training failed (divergence, mode collapse) ``!``, a confirmation run ``+``; a
    child stopped early shows ``stop@N`` (the epoch it reached) for its seconds. When
    the search confirmed its best architectures, a ``mean`` column shows each architecture's
    mean reward over its trainings (the order's key).
    """
    if frame.empty:
        return "(no finished child)"
    if "test" not in frame:
        frame = frame.assign(test=frame.get("test_accuracy"), test_metric="test_accuracy")
    names = set(frame["test_metric"].head(top))
    test_name = names.pop().removeprefix("test_") if len(names) == 1 else "test"
    width = max(7, len(test_name))
    confirmed = "confirmation" in frame and bool(frame["confirmation"].any())
    mean = f" {'mean':>7}" if confirmed else ""
    header = (
        f"{'rank':>4}  {'child':<10} {'reward':>7}{mean} {test_name:>{width}} {'params':>9} "
        f"{'secs':>6}  architecture"
    )
    lines = [header]
    for rank, row in enumerate(frame.head(top).itertuples(index=False), start=1):
        row = row._asdict()
        arch = row.get("architecture")
        arch = architecture_summary(json.loads(arch) if isinstance(arch, str) else arch or {})
        child = child_run_name(int(row["child"]))
        child += "*" if row.get("included") else "!" if row.get("failure") else ""
        child += "+" if row.get("confirmation") else ""
        mean = f" {_num(row.get('mean_reward'), 4):>7}" if confirmed else ""
        seconds = _num(row.get("train_seconds"), 1)
        if row.get("stopped_epoch"):
            seconds = f"stop@{int(row['stopped_epoch'])}"
        lines.append(
            f"{rank:>4}  {child:<10} {_num(row.get('reward'), 4):>7}{mean} "
            f"{_num(row.get('test'), 4):>{width}} {_int(row.get('params')):>9} "
            f"{seconds:>6}  {arch}"
        )
    return "\n".join(lines)


def _num(value: Any, digits: int) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if value != value else f"{value:.{digits}f}"


def _int(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "-"
