"""What a kept model takes and gives outside Python: named arrays in, one array out.

The same contract serves the MLflow model (`search.pyfunc`) and the exported files
(`search.export`):

- a predictor takes ``x``, float32 ``(N, *input_shape)``, and where its inputs are sequences
  ``(T, F)`` or ``(T,)`` and its forward takes them, ``lengths``, int64 ``(N,)``: each series'
  true length (``T`` for a series that fills the whole window);
- a generative model (``gan``, ``vae``) takes ``z``, float32 ``(N, latent_dim)``: latent
  vectors, standard normal draws for samples like ``model.sample``'s.

What comes out (`Output`): class probabilities ``(N, classes)`` for classification, forecasts
``(N, horizon)`` for forecasting, samples ``(N, *input_shape)`` for a generative model. The
exported files give the network's own output instead (logits for classification, as
``load_best``'s model does).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from spaces.ensemble import Ensemble
from spaces.families import GenerativeModel

__all__ = ["OUTPUTS", "Input", "ModelIO", "model_io", "output_of", "takes_lengths"]

OUTPUTS = ("probabilities", "forecasts", "samples")
"""What a kept model's prediction is, by the task's kind: classification, forecasting,
generative."""


@dataclass(frozen=True)
class Input:
    """One named input array; ``-1`` in `shape` is the batch."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelIO:
    """The named inputs of a kept model and what its prediction is (one of `OUTPUTS`)."""

    inputs: tuple[Input, ...]
    output: str
    output_shape: tuple[int, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    def tensors(self, batch: Mapping[str, Any] | np.ndarray) -> list[torch.Tensor]:
        """The inputs of `batch` (a mapping by name, or the first input alone) as tensors, in
        order; a missing or misshapen input raises ValueError."""
        if not isinstance(batch, Mapping):
            batch = {self.inputs[0].name: batch}
        out = []
        for spec in self.inputs:
            if spec.name not in batch:
                raise ValueError(f"missing input {spec.name!r}; inputs: {', '.join(self.names)}")
            value = np.asarray(batch[spec.name], dtype=spec.dtype)
            if value.shape[1:] != spec.shape[1:]:
                raise ValueError(
                    f"input {spec.name!r} has shape {value.shape}, expected (N, "
                    f"{', '.join(map(str, spec.shape[1:]))})"
                )
            out.append(torch.from_numpy(np.ascontiguousarray(value)))
        return out

    @torch.no_grad()
    def predict(self, model: nn.Module, batch: Mapping[str, Any] | np.ndarray) -> np.ndarray:
        """`model`'s prediction for `batch` as `output` says (probabilities, not logits)."""
        out = model(*self.tensors(batch)).float()
        if self.output == "probabilities":
            out = out.softmax(dim=-1)
        return out.numpy()

    def example(self, n: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
        """A batch of `n` inputs: zeros (full-length series), or standard normal ``z``."""
        rng = np.random.default_rng(seed)
        batch = {}
        for spec in self.inputs:
            shape = (n, *spec.shape[1:])
            if spec.name == "lengths":
                batch[spec.name] = np.full(shape, self.inputs[0].shape[1], dtype=spec.dtype)
            elif spec.name == "z":
                batch[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
            else:
                batch[spec.name] = np.zeros(shape, dtype=spec.dtype)
        return batch


def output_of(model: nn.Module, task_kind: str) -> str:
    """What `model`, trained on a task of `task_kind`, predicts (one of `OUTPUTS`)."""
    if isinstance(model, GenerativeModel):
        return "samples"
    if task_kind == "forecasting":
        return "forecasts"
    if task_kind == "classification":
        return "probabilities"
    raise ValueError(f"no prediction known for a task of kind {task_kind!r}")


def takes_lengths(model: nn.Module, input_shape: tuple[int, ...]) -> bool:
    """Whether `model` reads sequences (``(T, F)`` or ``(T,)``) and takes their lengths."""
    network = model.members[0] if isinstance(model, Ensemble) else model
    try:
        accepts = "lengths" in inspect.signature(network.forward).parameters
    except (TypeError, ValueError):
        accepts = False
    return accepts and len(input_shape) <= 2


def model_io(
    model: nn.Module, input_shape: tuple[int, ...], num_outputs: int, output: str
) -> ModelIO:
    """The inputs and output of `model` (built for `input_shape` and `num_outputs`) predicting
    `output` (one of `OUTPUTS`)."""
    if output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; known: {', '.join(OUTPUTS)}")
    shape = tuple(int(d) for d in input_shape)
    if isinstance(model, GenerativeModel):
        return ModelIO((Input("z", "float32", (-1, model.latent_dim)),), output, (-1, *shape))
    inputs = [Input("x", "float32", (-1, *shape))]
    if takes_lengths(model, shape):
        inputs.append(Input("lengths", "int64", (-1,)))
    return ModelIO(tuple(inputs), output, (-1, num_outputs))
