"""Fixtures of the trainer tests: one torch thread, one reference-classifier cache per module."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest, and repeatably, on one thread (several spin against each other
    on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory) -> str:
    """One cache of reference classifiers for the module (each is trained once)."""
    return str(tmp_path_factory.mktemp("reference"))
