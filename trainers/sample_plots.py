"""PNG renderings of generated samples (matplotlib's Agg canvas; no display needed)."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MAX_IMAGES", "MAX_SEQUENCES", "sample_grid_png"]

MAX_IMAGES = 64
"""Images shown in a grid."""
MAX_SEQUENCES = 16
"""Sequences shown as small multiples."""


def sample_grid_png(samples: torch.Tensor, title: str = "") -> bytes:
    """A PNG of ``samples``: a grid of the first `MAX_IMAGES` images ``(N, C, H, W)``
    (grayscale for one channel, RGB for three, the first channel otherwise; values clipped to
    ``[0, 1]``), or line plots of the first `MAX_SEQUENCES` sequences ``(N, T, C)`` (one line per
    channel). Any other shape is flattened and drawn as lines. Non-finite values do not raise.
    """
    x = samples.detach().to("cpu", torch.float32).numpy()
    if x.ndim == 4:
        figure = _image_grid(x[:MAX_IMAGES])
    else:
        x = x[:MAX_SEQUENCES]
        x = x if x.ndim == 3 else x.reshape(len(x), -1, 1)
        figure = _line_grid(x)
    if title:
        figure.suptitle(title, fontsize=9)
    buffer = io.BytesIO()
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # 0.3 s: only when drawing

    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _image_grid(x: np.ndarray) -> Figure:
    n, c, h, w = x.shape
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0).clip(0.0, 1.0)
    x = x[:, :3] if c == 3 else x[:, :1]
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    pad = 1
    mosaic = np.ones((x.shape[1], rows * (h + pad) + pad, cols * (w + pad) + pad), np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        mosaic[:, top : top + h, left : left + w] = x[i]
    side = min(6.0, max(2.5, 0.06 * max(mosaic.shape[1:])))
    from matplotlib.figure import Figure

    figure = Figure(figsize=(side, side * mosaic.shape[1] / mosaic.shape[2] + 0.3), dpi=100)
    ax = figure.add_subplot()
    if mosaic.shape[0] == 3:
        ax.imshow(mosaic.transpose(1, 2, 0), interpolation="nearest")
    else:
        ax.imshow(mosaic[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    return figure


def _line_grid(x: np.ndarray) -> Figure:
    n = max(1, len(x))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1.6 * cols, 1.0 * rows + 0.3), dpi=64)
    for i in range(len(x)):
        ax = figure.add_subplot(rows, cols, i + 1)
        ax.plot(np.nan_to_num(x[i], nan=0.0, posinf=0.0, neginf=0.0), linewidth=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
    return figure
