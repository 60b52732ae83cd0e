"""Model families: builders turning an architecture plus the task's shapes into an nn.Module.

A family is one module that registers a builder with `register_family`; `build_model` builds
and checks an architecture with a dry forward pass, raising `InvalidArchitecture` otherwise::

    from spaces.families import build_model, count_parameters
    model = build_model("cnn", arch, input_shape=(1, 8, 8), num_outputs=10)
"""

from __future__ import annotations

# importing a family's module registers it
from . import cnn, cnn1d, gan, hybrid, inception, mlp, resnet1d, rnn, tdnn, vae  # noqa: F401
from ._common import ACTIVATIONS, make_activation
from ._registry import (
    FamilyBuilder,
    InvalidArchitecture,
    build_model,
    count_parameters,
    family_trainer,
    get_family,
    list_families,
    register_family,
)
from .generative import GenerativeModel

__all__ = [
    "ACTIVATIONS",
    "FamilyBuilder",
    "GenerativeModel",
    "InvalidArchitecture",
    "build_model",
    "count_parameters",
    "family_trainer",
    "get_family",
    "list_families",
    "make_activation",
    "register_family",
]
