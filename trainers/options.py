"""How to train one child: the options every trainer's ``fit`` takes.

One frozen dataclass (as minGPT's trainer config) instead of keyword arguments and attributes
set on the trainer: what a trainer does with each option, and which it refuses, is declared by
its capabilities (`trainers.base.Trainer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainers.augment import parse_augmentations

__all__ = ["LR_SCHEDULES", "TrainOptions"]

LR_SCHEDULES = ("constant", "cosine", "plateau")
"""Values of `TrainOptions.lr_schedule`."""


@dataclass(frozen=True)
class TrainOptions:
    """The settings of one training; checked on construction (a ``ValueError`` names the bad
    one), and against the trainer and task by `Trainer.fit`."""

    epochs: int
    """Epochs to train (see each trainer for what one epoch is)."""
    seed: int
    """Seeds Python, NumPy and torch, the batch order, augmentation and evaluation samples."""
    batch_size: int = 64
    """Training batch size (supervised training caps it for tiny splits)."""
    lr: float = 1e-3
    """Adam learning rate, for models that do not choose their own (a GAN does)."""
    lr_schedule: str = "constant"
    """``constant``; ``cosine``: decays per epoch from ``lr`` towards 0; ``plateau``: halved
    when the training loss stops improving (`trainers.learning_rate`; trainers with
    ``supports_lr_schedule``)."""
    augment: tuple[str, ...] = ()
    """Augmentations of training batches (`trainers.augment.AUGMENTATIONS`), for trainers with
    ``supports_augment`` on sequence tasks; empty: none."""
    metric: str | None = None
    """The validation metric the reward is made of: one of the trainer's ``reward_metrics``;
    None: its first."""
    reference_dir: str | None = None
    """Folder caching the task's reference classifier (trainers with ``uses_reference``);
    None: ``runs/cache/reference``."""
    device: str | torch.device | None = None
    """Where to train; None: `trainers.device.pick_device()`."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            known = ", ".join(LR_SCHEDULES)
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; known: {known}")
        # frozen: the normalised names (known, in order, once each) replace the given ones
        object.__setattr__(self, "augment", parse_augmentations(self.augment))
