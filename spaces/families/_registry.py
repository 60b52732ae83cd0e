"""Family registry: builders by name, and the checked `build_model` entry point."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .generative import GenerativeModel

__all__ = [
    "FamilyBuilder",
    "InvalidArchitecture",
    "build_model",
    "count_parameters",
    "get_family",
    "list_families",
    "family_trainer",
    "register_family",
]

FamilyBuilder = Callable[[Mapping[str, Any], tuple[int, ...], int], nn.Module]
"""`build(arch, input_shape, num_outputs) -> nn.Module`; input_shape excludes the batch."""

_FAMILIES: dict[str, FamilyBuilder] = {}
_TRAINERS: dict[str, str] = {}

# Errors a builder or a forward pass raises on a bad architecture (torch reports shape
# mismatches and too-small outputs as RuntimeError or ValueError).
_BUILD_ERRORS = (KeyError, TypeError, ValueError, IndexError, RuntimeError)


class InvalidArchitecture(ValueError):
    """An architecture that cannot be built for the given shapes; the message is one line."""


def register_family(
    name: str, trainer: str | None = None
) -> Callable[[FamilyBuilder], FamilyBuilder]:
    """Decorator registering a family builder under `name`; a duplicate name raises.

    ``trainer`` names the trainer kind the family's models need (``"gan"``, ``"vae"``);
    by default the task's kind picks the trainer.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"family name must be a non-empty string, got {name!r}")

    def decorator(builder: FamilyBuilder) -> FamilyBuilder:
        if name in _FAMILIES:
            other = _FAMILIES[name]
            raise ValueError(
                f"family {name!r} is already registered "
                f"(by {other.__module__}.{other.__qualname__})"
            )
        _FAMILIES[name] = builder
        if trainer is not None:
            _TRAINERS[name] = trainer
        return builder

    return decorator


def get_family(name: str) -> FamilyBuilder:
    """The builder registered under `name`; an unknown name raises listing the known ones."""
    try:
        return _FAMILIES[name]
    except KeyError:
        known = ", ".join(list_families()) or "none"
        raise ValueError(f"unknown family {name!r}; known families: {known}") from None


def family_trainer(name: str) -> str | None:
    """The trainer kind family `name` declared, or None when the task's kind decides."""
    get_family(name)
    return _TRAINERS.get(name)


def list_families() -> list[str]:
    """Names of the registered families, sorted."""
    return sorted(_FAMILIES)


def build_model(
    family: str,
    arch: Mapping[str, Any],
    input_shape: Sequence[int],
    num_outputs: int,
) -> nn.Module:
    """Build `arch` with `family`'s builder and check it with a dry forward pass.

    The dry pass runs a zero batch of 2 on the CPU in eval mode without gradients and checks
    the output is (2, num_outputs); for a `GenerativeModel` it runs ``check`` on that batch and
    checks that two samples have the input's shape (``num_outputs`` is then unused). The model
    comes back in train mode.

    Args:
        family: a registered family name.
        arch: the architecture, a plain mapping in the family's format.
        input_shape: the shape of one example, without the batch dimension.
        num_outputs: the width of the model's output (classes, forecast horizon, ...).

    Raises:
        InvalidArchitecture: the architecture cannot be built or run for these shapes.
        ValueError: `family` is not registered.
    """
    builder = get_family(family)
    shape = _check_shape(input_shape)
    if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
        raise InvalidArchitecture(f"num_outputs must be a positive integer, got {num_outputs!r}")
    try:
        model = builder(arch, shape, num_outputs)
    except InvalidArchitecture:
        raise
    except _BUILD_ERRORS as exc:
        raise InvalidArchitecture(f"{family}: cannot build: {_one_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise TypeError(f"family {family!r} returned {type(model).__name__}, not an nn.Module")
    if count_parameters(model) == 0:
        raise InvalidArchitecture(f"{family}: the network is empty (no trainable parameters)")
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(model, GenerativeModel):
                _dry_run_generative(family, model, shape)
            else:
                _dry_run_predictor(family, model, shape, num_outputs)
    finally:
        model.train()
    return model


def _dry_run_predictor(
    family: str, model: nn.Module, shape: tuple[int, ...], num_outputs: int
) -> None:
    try:
        out = model(torch.zeros((2, *shape)))
    except _BUILD_ERRORS as exc:
        raise InvalidArchitecture(f"{family}: dry forward pass failed: {_one_line(exc)}") from exc
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_outputs):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidArchitecture(
            f"{family}: dry forward pass gave output {got}, expected (2, {num_outputs})"
        )


def _dry_run_generative(family: str, model: GenerativeModel, shape: tuple[int, ...]) -> None:
    try:
        model.check(torch.zeros((2, *shape)))
        out = model.sample(2)
    except _BUILD_ERRORS as exc:
        raise InvalidArchitecture(f"{family}: dry run failed: {_one_line(exc)}") from exc
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, *shape):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidArchitecture(f"{family}: samples have shape {got}, expected {(2, *shape)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (uninitialised lazy parameters count as 0)."""
    return sum(
        p.numel()
        for p in model.parameters()
        if p.requires_grad and not isinstance(p, nn.parameter.UninitializedParameter)
    )


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise InvalidArchitecture(
            f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}"
        )
    return shape


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    if isinstance(exc, KeyError):
        text = f"missing key {text}"
    return text if len(text) <= 300 else text[:297] + "..."
