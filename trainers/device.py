"""Device, precision and seeding for one trial.

Ray sets ``CUDA_VISIBLE_DEVICES`` per trial, so ``cuda:0`` is the trial's GPU when it has one.
On CUDA the trainers use mixed precision (bf16 where supported, else fp16 with a gradient
scaler); on CPU they train in plain fp32 with as many torch threads as the trial has CPUs.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch

__all__ = [
    "autocast",
    "autocast_dtype",
    "configure_cpu_threads",
    "grad_scaler",
    "pick_device",
    "seed_everything",
]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``device`` if given, else ``cuda:0`` if CUDA is visible, else CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def configure_cpu_threads(n: float) -> int:
    """Set torch's intra-op thread count to the trial's CPU count (at least 1).

    Args:
        n: CPUs given to the trial; fractional counts (as Ray allows) are rounded down.

    Returns:
        The thread count set.
    """
    threads = max(1, int(n))
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype for ``device``: bf16 or fp16 on CUDA, None (fp32) elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """A context that runs forward passes in mixed precision on CUDA; a no-op elsewhere."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 on CUDA (a pass-through otherwise)."""
    enabled = autocast_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda" if enabled else "cpu", enabled=enabled)
