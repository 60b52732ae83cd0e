"""A child's model on disk: architecture, build facts and weights; loading never unpickles code.

A model directory holds::

    architecture.json   the architecture (plain JSON)
    model.json          family, input shape, outputs, task and space name; for an ensemble
                        (a cross-validated child's refit and fold models) its member count
                        and how it combines them
    state_dict.pt       the weights (loaded with ``torch.load(weights_only=True)``)
    space.yaml          the space file the architecture came from
    members.json        only for an ensemble of several architectures: ``[{"architecture":
                        ..., "members": n}, ...]`` in member order (``architecture.json`` is
                        then the first, the search's best)
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spaces.ensemble import Ensemble
from spaces.families import build_model

__all__ = ["ModelSpec", "load_model_dir", "read_spec", "save_model_dir"]


@dataclass(frozen=True)
class ModelSpec:
    """What it takes to rebuild a child's network."""

    family: str
    input_shape: tuple[int, ...]
    num_outputs: int
    task: str
    space: str
    ensemble: int = 0
    """Members when the model is an `Ensemble` of copies of the architecture; 0: one network."""
    combine: str = ""
    """How the ensemble combines its members (`Ensemble.combine`)."""


def save_model_dir(
    path: str | Path,
    architecture: dict[str, Any],
    spec: ModelSpec,
    state_dict: dict[str, torch.Tensor],
    space_text: str = "",
    groups: list[tuple[dict[str, Any], int]] | None = None,
) -> Path:
    """Write a model directory; return its path. `groups`: an ensemble's members as runs of
    ``(architecture, count)`` when they are not all `architecture`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "architecture.json").write_text(json.dumps(architecture, indent=2, sort_keys=True))
    (path / "model.json").write_text(json.dumps(asdict(spec), indent=2))
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, path / "state_dict.pt")
    if space_text:
        (path / "space.yaml").write_text(space_text)
    if groups:
        if sum(n for _, n in groups) != spec.ensemble:
            raise ValueError(
                f"members.json would count {sum(n for _, n in groups)} members, "
                f"model.json {spec.ensemble}"
            )
        (path / "members.json").write_text(
            json.dumps([{"architecture": a, "members": n} for a, n in groups], indent=2)
        )
    return path


def read_spec(path: str | Path) -> ModelSpec:
    """The `ModelSpec` of a model directory (its ``model.json``)."""
    facts = json.loads((Path(path) / "model.json").read_text())
    known = {f.name for f in fields(ModelSpec)}
    spec = {k: v for k, v in facts.items() if k in known}
    return ModelSpec(**{**spec, "input_shape": tuple(spec["input_shape"])})


def load_model_dir(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network of a model directory, with its weights, in eval mode."""
    path = Path(path)
    missing = [
        f for f in ("architecture.json", "model.json", "state_dict.pt") if not (path / f).exists()
    ]
    if missing:
        raise FileNotFoundError(f"{path}: not a model directory (missing {', '.join(missing)})")
    facts = json.loads((path / "model.json").read_text())
    shape = tuple(facts["input_shape"])

    def build(architecture: dict[str, Any]) -> nn.Module:
        return build_model(facts["family"], architecture, shape, facts["num_outputs"])

    combine = facts.get("combine") or "probabilities"
    model: nn.Module
    if (path / "members.json").exists():
        groups = json.loads((path / "members.json").read_text())
        model = Ensemble(
            [build(g["architecture"]) for g in groups for _ in range(int(g["members"]))], combine
        )
    else:
        model = build(json.loads((path / "architecture.json").read_text()))
        members = int(facts.get("ensemble") or 0)
        if members:  # the weights below differ per member; the built network is a template
            model = Ensemble([copy.deepcopy(model) for _ in range(members)], combine)
    state = torch.load(path / "state_dict.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()
