"""``waves``: a generated univariate sequence classification task (no download).

Four classes of waveform — sine, square, sawtooth and triangle — each with a random period,
phase and amplitude plus Gaussian noise, 64 steps long, 400 series per class, split 60/20/20
(stratified, seeded). The generator is fixed (seed 2024), so the series are the same on every
machine; the split seed only decides which series land in which split. Sequence families and
the generative families' recurrent generators (C-RNN-GAN style) train on it in seconds.
"""

from __future__ import annotations

import numpy as np
import torch

from trainers.tasks import Task, register_task, stratified_split

__all__ = ["WAVEFORMS", "make_waves"]

WAVEFORMS = ("sine", "square", "sawtooth", "triangle")
LENGTH = 64
PER_CLASS = 400
NOISE = 0.1


def make_waves(
    per_class: int = PER_CLASS, length: int = LENGTH, seed: int = 2024
) -> tuple[np.ndarray, np.ndarray]:
    """Series ``(N, length, 1)`` float32 and labels ``(N,)`` int64 (indices into `WAVEFORMS`)."""
    rng = np.random.default_rng(seed)
    n = per_class * len(WAVEFORMS)
    labels = np.repeat(np.arange(len(WAVEFORMS)), per_class)
    period = rng.uniform(12.0, 32.0, size=(n, 1))
    phase = rng.uniform(0.0, 1.0, size=(n, 1))
    amplitude = rng.uniform(0.6, 1.4, size=(n, 1))
    cycles = np.arange(length)[None, :] / period + phase  # position in cycles
    frac = cycles % 1.0
    shapes = np.stack(
        [
            np.sin(2 * np.pi * cycles),
            np.where(frac < 0.5, 1.0, -1.0),
            2.0 * frac - 1.0,
            4.0 * np.abs(frac - 0.5) - 1.0,
        ]
    )  # (classes, N, length)
    series = amplitude * shapes[labels, np.arange(n)] + rng.normal(0.0, NOISE, size=(n, length))
    return series.astype(np.float32)[:, :, None], labels.astype(np.int64)


@register_task("waves")
def _waves(seed: int) -> Task:
    x, y = make_waves()
    parts = [torch.from_numpy(np.ascontiguousarray(a)) for a in stratified_split(x, y, seed)]
    return Task(
        name="waves",
        kind="classification",
        input_shape=(LENGTH, 1),
        num_classes=len(WAVEFORMS),
        x_train=parts[0],
        y_train=parts[1],
        x_val=parts[2],
        y_val=parts[3],
        x_test=parts[4],
        y_test=parts[5],
        metadata={
            "source": "generated waveforms (sine, square, sawtooth, triangle)",
            "seed": seed,
            "split": [0.6, 0.2, 0.2],
        },
    )
