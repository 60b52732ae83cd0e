"""What every child of a search is trained with: the settings the driver hands each trial.

The runner builds one `ChildSetup` from the search's config; the searcher puts it into every
trial's config (``config["setup"]``), so Ray Tune pickles it to the workers; `train_child` and
`evaluate_child` read it there. It is not part of the saved search state: a resumed search
builds it again from the saved config.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from trainers import Trainer, TrainOptions

__all__ = ["ChildSetup"]


@dataclass(frozen=True)
class ChildSetup:
    """The static settings of a search's children (those of `search.config.SearchConfig`
    they need, resolved on the driver)."""

    task: str
    """The task name or data file (relative to `cwd`)."""
    family: str
    """The space's model family."""
    space: str
    """The space's name."""
    epochs: int
    batch_size: int
    lr: float
    data_seed: int = 0
    """Seeds the task's splits (the search's seed)."""
    space_text: str = ""
    """The space's definition, saved beside each child's model."""
    lr_schedule: str = "constant"
    augment: tuple[str, ...] = ()
    objective: str | Callable[..., Any] | None = None
    """A custom objective (``module:function`` or a callable) scoring architectures instead
    of training them; None: train."""
    reward_expression: str = ""
    """The search's reward expression over a child's metrics; empty: the trainer's reward."""
    cwd: str = "."
    """The driver's working directory (Tune runs each trial in its own)."""
    cache_dir: str = ""
    """Folder of caches shared by the children; empty: ``<cwd>/runs/cache``."""

    def task_path(self) -> str:
        """The task; a relative data-file path is taken from the driver's working directory."""
        path = os.path.join(self.cwd, self.task)
        if not os.path.isabs(self.task) and os.path.isfile(path):
            return path
        return self.task

    def reward_metric(self, trainer: type[Trainer] | Trainer) -> str | None:
        """The metric ``trainer`` rewards: X when the reward expression is just ``val_X`` and X
        is one of the trainer's ``reward_metrics`` (``--reward val_uar`` keeps the best-UAR
        epoch), else None (the trainer's default)."""
        expression = self.reward_expression.strip()
        if expression.startswith("val_") and expression[4:] in trainer.reward_metrics:
            return expression[4:]
        return None

    def train_options(
        self, trainer: type[Trainer] | Trainer, seed: int, device: torch.device
    ) -> TrainOptions:
        """The `TrainOptions` of one child trained by ``trainer`` with ``seed`` on ``device``."""
        reference_dir = None
        if trainer.uses_reference:
            cache = self.cache_dir or os.path.join(self.cwd, "runs", "cache")
            reference_dir = os.path.join(cache, "reference")
        return TrainOptions(
            epochs=self.epochs,
            seed=seed,
            batch_size=self.batch_size,
            lr=self.lr,
            lr_schedule=self.lr_schedule,
            augment=self.augment,
            metric=self.reward_metric(trainer),
            reference_dir=reference_dir,
            device=device,
        )
