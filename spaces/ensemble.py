"""Several trained networks that predict as one.

A cross-validated child keeps its fold models beside the refitted one (as InceptionTime
averages five networks), and a search may keep the trainings of its best architectures
together: classifiers average their members' class probabilities, regressors
their outputs. The ensemble is an ordinary ``nn.Module`` whose weights are its members' under
``members.<i>.``, so it saves and loads like any child's model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["COMBINES", "Ensemble"]

COMBINES = ("probabilities", "mean")
"""``probabilities``: members give logits, the ensemble the log of their mean softmax (so
``argmax`` and ``cross_entropy`` treat it as logits); ``mean``: the mean output."""


class Ensemble(nn.Module):
    """Networks of one task's shapes whose predictions are averaged (see `COMBINES`)."""

    def __init__(self, members: Sequence[nn.Module], combine: str = "probabilities") -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if combine not in COMBINES:
            raise ValueError(f"unknown combine {combine!r}; known: {', '.join(COMBINES)}")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The members' averaged prediction; ``lengths`` (of padded series) go to each member."""
        outputs = [m(x) if lengths is None else m(x, lengths) for m in self.members]
        if self.combine == "mean":
            return torch.stack(outputs).mean(dim=0)
        probabilities = torch.stack([o.float().softmax(dim=-1) for o in outputs]).mean(dim=0)
        return probabilities.clamp_min(torch.finfo(torch.float32).tiny).log()
