"""One kept model of every family and of every kind of ensemble, registered as a search does.

The networks are untrained (seeded initial weights): the tests that use them check that a model
predicts the same wherever it is loaded or exported, not how well.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search.combined import combine_model_dirs
from search.model_files import ModelSpec, save_model_dir
from search.model_io import takes_lengths
from search.records import ChildRecord
from search.tracking import Tracker
from spaces.ensemble import Ensemble
from spaces.families import GenerativeModel, build_model
from spaces.families.gan import DEFAULT_SEQUENCE_GAN
from tests.examples import FAST_IMAGE_GAN, SMALL_CONV_VAE
from trainers import Task, load_task

VOWELS = "uea:JapaneseVowels"  # series of unequal length, padded
SEQUENCE_GAN = {**DEFAULT_SEQUENCE_GAN, "g_layers": [{"width": 8}], "d_layers": [{"width": 8}]}


@dataclass(frozen=True)
class Case:
    """A kept model: `members` trainings of `architectures` (one group per architecture)."""

    task: str
    family: str
    architectures: list[dict[str, Any]]
    members: int = 1
    """Networks per architecture: several make a cross-validated child's ensemble."""
    combine: str = ""


CASES = {
    "mlp": Case("digits", "mlp", [{"layers": [{"width": 32, "activation": "gelu"}]}]),
    "cnn": Case(
        "digits",
        "cnn",
        [
            {
                "layers": [
                    {"filters": 8, "batchnorm": True, "residual": True, "downsample": "maxpool"},
                    {"filters": 8, "kernel": 5, "downsample": "stride"},
                ],
                "head": 16,
            }
        ],
    ),
    "rnn-image": Case(
        "digits", "rnn", [{"cell": "gru", "layers": [{"units": 16}], "readout": "attention"}]
    ),
    "rnn": Case(
        VOWELS,
        "rnn",
        [{"cell": "lstm", "bidirectional": True, "layers": [{"units": 16}], "readout": "mean"}],
    ),
    "rnn-peephole": Case(
        VOWELS, "rnn", [{"cell": "peephole_lstm", "layers": [{"units": 8}], "readout": "last"}]
    ),
    "cnn1d": Case(
        VOWELS,
        "cnn1d",
        [
            {
                "layers": [
                    {"filters": 8, "downsample": "stride", "batchnorm": True},
                    {"filters": 8, "downsample": "maxpool"},
                ],
                "readout": "attention",
            }
        ],
    ),
    "tdnn": Case(
        VOWELS,
        "tdnn",
        [{"layers": [{"channels": 8}, {"channels": 8}], "residual": True, "readout": "max"}],
    ),
    "hybrid": Case(
        VOWELS,
        "hybrid",
        [
            {
                "conv": [{"filters": 8, "downsample": "maxpool"}],
                "cell": "gru",
                "bidirectional": True,
                "layers": [{"units": 8}],
                "readout": "last",
            }
        ],
    ),
    "forecast": Case(
        "forecast:MackeyGlass", "tdnn", [{"layers": [{"channels": 8}], "readout": "last"}]
    ),
    "gan": Case("digits", "gan", [FAST_IMAGE_GAN]),
    "gan-rnn": Case("waves", "gan", [SEQUENCE_GAN]),
    "vae": Case("digits", "vae", [SMALL_CONV_VAE]),
    "cv-ensemble": Case(
        "digits",
        "mlp",
        [{"layers": [{"width": 16, "activation": "relu"}]}],
        members=3,
        combine="probabilities",
    ),
    "cv-forecast": Case(
        "forecast:MackeyGlass",
        "tdnn",
        [{"layers": [{"channels": 4}], "readout": "mean"}],
        members=2,
        combine="mean",
    ),
    "confirmed": Case(
        VOWELS,
        "rnn",
        [
            {"cell": "lstm", "layers": [{"units": 8}], "readout": "last"},
            {"cell": "gru", "layers": [{"units": 8}], "readout": "attention"},
        ],
        members=2,
        combine="probabilities",
    ),
}
"""Kept models by name; each is registered as a search of that name."""


@cache
def task(name: str) -> Task:
    return load_task(name, seed=0)


def write_model_dir(case: Case, path: Path, seed: int = 0) -> Path:
    """`case`'s model directory at `path`, its weights drawn from `seed`."""
    t = task(case.task)
    spec = ModelSpec(case.family, t.input_shape, t.num_outputs, t.name, case.family)
    sources = []
    for i, architecture in enumerate(case.architectures):
        torch.manual_seed(seed + i)
        model = build_model(case.family, architecture, t.input_shape, t.num_outputs)
        if case.members > 1:
            members = [copy.deepcopy(model) for _ in range(case.members)]
            for member in members[1:]:
                for p in member.parameters():
                    p.data.add_(0.1 * torch.randn_like(p))
            model = Ensemble(members, case.combine)
        own = (
            replace(spec, ensemble=case.members, combine=case.combine) if case.members > 1 else spec
        )
        sources.append(save_model_dir(path / str(i), architecture, own, model.state_dict()))
    if len(sources) == 1:
        return sources[0]
    return combine_model_dirs(sources, path / "combined", case.combine)[0]


def register(uri: str, name: str, root: Path) -> str:
    """Register `CASES[name]` in store `uri` as search `name` does; return the run id."""
    case = CASES[name]
    tracker = Tracker(uri, name)
    try:
        tracker.start_parent({"task": case.task}, "", f"{name}-parent")
        run_id = tracker.client.create_run(tracker.experiment_id, run_name="child-001").info.run_id
        model_dir = write_model_dir(case, root / name)
        tracker.client.log_artifacts(run_id, str(model_dir), "model")
        record = ChildRecord(1, "t", 1, case.architectures[0], run_id=run_id, reward=0.5)
        tracker.register_best(record, task(case.task).kind)
        tracker.end_parent()
    finally:
        tracker.close()
    return run_id


def batch(name: str, model: torch.nn.Module, n: int | None = None) -> dict[str, np.ndarray]:
    """Inputs of `name`'s kept `model`: the test split (the first `n`) with its series'
    lengths (full where the task's series all are), or seeded latent vectors."""
    t = task(CASES[name].task)
    if isinstance(model, GenerativeModel):
        z = np.random.default_rng(0).standard_normal((n or 64, model.latent_dim))
        return {"z": z.astype(np.float32)}
    x = t.x_test[:n].numpy()
    if not takes_lengths(model, t.input_shape):
        return {"x": x}
    if t.lengths:
        return {"x": x, "lengths": t.lengths["test"][:n].numpy()}
    return {"x": x, "lengths": np.full(len(x), t.input_shape[0], dtype=np.int64)}


def as_json(inputs: dict[str, np.ndarray]) -> str:
    return json.dumps({"inputs": {k: v.tolist() for k, v in inputs.items()}})
