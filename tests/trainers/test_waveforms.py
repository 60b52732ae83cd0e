"""The generated ``waves`` task: the same series everywhere, balanced, split by seed.

(That a classifier learns it is checked by the reference classifier in test_quality.py.)
"""

from __future__ import annotations

import numpy as np
import torch

from trainers import describe_task, list_tasks, load_task
from trainers.waveforms import WAVEFORMS, make_waves


def test_waves_are_fixed_balanced_and_split_by_seed():
    x1, y1 = make_waves()
    x2, _ = make_waves()
    assert np.array_equal(x1, x2)  # a fixed generator: the same data on every machine
    assert x1.shape == (1600, 64, 1) and np.isfinite(x1).all()
    assert np.bincount(y1).tolist() == [400] * len(WAVEFORMS)
    a, b = load_task("waves", seed=0), load_task("waves", seed=1)
    assert a.input_shape == (64, 1) and a.num_classes == 4
    assert [len(a.x_train), len(a.x_val), len(a.x_test)] == [960, 320, 320]
    assert a.y_val.bincount().tolist() == [80] * 4
    assert not torch.equal(a.x_val, b.x_val)
    assert "waves" in list_tasks() and describe_task("waves")["sizes"] == (960, 320, 320)
