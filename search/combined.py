"""One kept model from several trainings: of the winning architecture, or of all confirmed ones.

After confirmation runs (``--confirm``) each confirmed architecture has been trained several
times, each training a model of its own (one network, or a refit + fold ensemble). Which
training scored best is partly luck, and so, where validation saturates, is which architecture
did; averaging their networks is what the extra trainings paid for, so the search keeps that
average as its best model (InceptionTime, likewise, averages five networks).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from search.model_files import load_model_dir, read_spec, save_model_dir
from spaces.ensemble import Ensemble
from trainers.tasks import Task

__all__ = ["combine_model_dirs", "members_of", "evaluate_on_test"]


def members_of(model: nn.Module) -> list[nn.Module]:
    """The networks a kept model averages: an `Ensemble`'s members, else the model itself."""
    return list(model.members) if isinstance(model, Ensemble) else [model]


def combine_model_dirs(
    sources: Sequence[str | Path], dest: str | Path, combine: str
) -> tuple[Path, Ensemble]:
    """Write model directory `dest` whose ensemble holds every network of `sources` (model
    directories of one family, input shape and output width), averaged as `combine` says
    (`Ensemble.combine`); return its path and the ensemble.

    Each network counts once, so a training kept as 6 networks weighs 6 times one kept as a
    single network. ``architecture.json`` is the first source's; when the sources differ in
    architecture, ``members.json`` says which member is which.
    """
    paths = [Path(s) for s in sources]
    if not paths:
        raise ValueError("nothing to combine: no model directories given")
    spec = read_spec(paths[0])
    groups: list[tuple[dict, int]] = []
    members: list[nn.Module] = []
    for path in paths:
        other = read_spec(path)
        if (other.family, other.input_shape, other.num_outputs) != (
            spec.family,
            spec.input_shape,
            spec.num_outputs,
        ):
            raise ValueError(
                f"{path}: a {other.family} model of input {other.input_shape} and "
                f"{other.num_outputs} outputs cannot join {paths[0]} ({spec.family}, "
                f"{spec.input_shape}, {spec.num_outputs}); cannot combine"
            )
        networks = members_of(load_model_dir(path))
        members += networks
        architecture = json.loads((path / "architecture.json").read_text())
        if groups and groups[-1][0] == architecture:
            groups[-1] = (architecture, groups[-1][1] + len(networks))
        else:
            groups.append((architecture, len(networks)))
    ensemble = Ensemble(members, combine).eval()
    space_file = paths[0] / "space.yaml"
    written = save_model_dir(
        dest,
        groups[0][0],
        replace(spec, ensemble=len(members), combine=combine),
        ensemble.state_dict(),
        space_file.read_text() if space_file.exists() else "",
        groups=groups if len(groups) > 1 else None,
    )
    return written, ensemble


@torch.no_grad()
def evaluate_on_test(trainer, model: nn.Module, task: Task) -> dict[str, float]:
    """``test_*`` metrics of `model` on `task`'s test split, as the trainer reports a child's."""
    lengths = task.lengths.get("test")
    options = {} if lengths is None else {"lengths": lengths}
    values = trainer.evaluate(model.eval(), task, task.x_test, task.y_test, **options)
    return {f"test_{k}": float(v) for k, v in values.items() if k != "loss"}
