"""Whether a space's architectures can be built for a task: the check a search makes before it
starts, and `rlnas spaces validate --task` makes on request."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spaces.families import InvalidArchitecture, build_model

Validator = Callable[[dict[str, Any]], str | None]

BUILD_CHECK_DRAWS = 500
"""Architectures drawn at random from the space before a search that can build none of them
is refused (drawing stops at the first that can be built: one, almost always)."""

SPACE_VALIDATE_DRAWS = 200
"""Architectures `rlnas spaces validate --task` draws and builds."""


def validator(space, task) -> Validator:
    """Why an architecture cannot be built for the task, or None (always None without a task)."""

    def validate(architecture: dict[str, Any]) -> str | None:
        if task is None:
            return None
        try:
            build_model(space.family, architecture, task.input_shape, task.num_outputs)
        except InvalidArchitecture as exc:
            return str(exc)
        return None

    return validate


@dataclass
class BuildDraws:
    """Architectures drawn at random and tried: how many could be built, and why the others
    could not."""

    built: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def drawn(self) -> int:
        """Architectures tried."""
        return self.built + self.reasons.total()

    @property
    def common_reason(self) -> str:
        """The most frequent reason an architecture could not be built ("" when all could)."""
        return self.reasons.most_common(1)[0][0] if self.reasons else ""


def draw_and_build(
    space, validate: Validator, draws: int, seed: int, stop_at_first: bool = False
) -> BuildDraws:
    """Draw up to `draws` architectures from `space` and try each; `stop_at_first` stops at
    the first that can be built."""
    rng = np.random.default_rng(seed)
    out = BuildDraws()
    for _ in range(draws):
        reason = validate(space.decode(space.sample(rng)))
        if reason is None:
            out.built += 1
            if stop_at_first:
                break
        else:
            out.reasons[reason] += 1
    return out
