"""Training-time augmentation of sequence batches, for classification on small archives.

With tens of training series (most UCR archives) a network can fit every one of them while
leaning on details the test series do not share. Perturbing each training batch with changes
that should not alter the class is the usual remedy for time series (Le Guennec et al. 2016,
window slicing; Iwana & Uchida 2021, an empirical survey over the UCR archives). Three are
built in, registered by name in `AUGMENTATIONS`:

- ``scale``: each series' channels multiplied by factors drawn from N(1, `SCALE_SD`);
- ``jitter``: Gaussian noise of standard deviation `JITTER_SD` added to every value (the
  inputs are standardised, so that is a fraction of a channel's spread);
- ``shift``: each series moved in time by up to `SHIFT_FRACTION` of its length, either way,
  the edge value repeated where the series was moved away from.

They only make sense where the class does not depend on what they change: a shift is harmless
for a gesture (GunPoint) and harmful where the time of day is the signal (ItalyPowerDemand),
so augmentation is off unless asked for. Padded series (``lengths``) are augmented within their
true length; the padding stays zero. Validation, refit selection and test never see it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

__all__ = [
    "AUGMENTATIONS",
    "JITTER_SD",
    "SCALE_SD",
    "SHIFT_FRACTION",
    "Augmenter",
    "check_augmentable",
    "parse_augmentations",
]

SCALE_SD = 0.1
JITTER_SD = 0.03
SHIFT_FRACTION = 0.1

AugmentFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]
"""``fn(x, lengths, generator)``: a batch ``(B, T, F)`` with true ``lengths`` ``(B,)``, changed."""


def _scale(x: torch.Tensor, lengths: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    factors = 1 + SCALE_SD * torch.randn(x.shape[0], 1, x.shape[2], generator=rng)
    return x * factors.to(x.device, x.dtype)


def _jitter(x: torch.Tensor, lengths: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    return x + JITTER_SD * torch.randn(x.shape, generator=rng).to(x.device, x.dtype)


def _shift(x: torch.Tensor, lengths: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    lengths = lengths.cpu()
    limit = torch.clamp((lengths * SHIFT_FRACTION).long(), min=1)
    offsets = torch.floor(torch.rand(len(lengths), generator=rng) * (2 * limit + 1)).long() - limit
    steps = torch.arange(x.shape[1])
    # step t reads step t - offset of the same series, clamped into its true length
    source = torch.minimum((steps[None, :] - offsets[:, None]).clamp(min=0), lengths[:, None] - 1)
    index = source.to(x.device)[:, :, None].expand(-1, -1, x.shape[2])
    return torch.gather(x, 1, index)


AUGMENTATIONS: dict[str, AugmentFn] = {"scale": _scale, "jitter": _jitter, "shift": _shift}
"""The built-in augmentations by name, applied in the order given."""


def parse_augmentations(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Names of augmentations from ``"scale,jitter"``, a list of names, or ``""``/``"none"``/
    None (no augmentation).

    Raises:
        ValueError: On a name that is not in `AUGMENTATIONS` (the message lists them).
    """
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(item).strip() for item in items if str(item).strip())
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        known = ", ".join(AUGMENTATIONS)
        raise ValueError(f"unknown augmentation {unknown[0]!r}; known: {known} (or none)")
    return tuple(dict.fromkeys(names))


def check_augmentable(task, names: Iterable[str]) -> None:
    """Raise ValueError unless ``task`` (a `trainers.tasks.Task`) is a sequence classification
    task, inputs ``(time steps, channels)``, or ``names`` is empty."""
    names = tuple(names)
    if names and (task.kind != "classification" or len(task.input_shape) != 2):
        raise ValueError(
            f"augmentation ({', '.join(names)}) applies to sequence classification tasks, "
            f"inputs (time steps, channels); task {task.name!r} is {task.kind} with inputs "
            f"{tuple(task.input_shape)}"
        )


class Augmenter:
    """Applies named augmentations to training batches, from its own seeded generator (so a
    child's training is reproducible and the batch order does not depend on augmentation)."""

    def __init__(self, names: Iterable[str], seed: int) -> None:
        self.names = parse_augmentations(list(names))
        self.generator = torch.Generator().manual_seed(seed)

    def __bool__(self) -> bool:
        return bool(self.names)

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, T, F)`` augmented; with ``lengths``, padding past them stays zero."""
        if not self.names:
            return x
        full = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        true_lengths = full if lengths is None else lengths.long().cpu()
        for name in self.names:
            x = AUGMENTATIONS[name](x, true_lengths, self.generator)
        if lengths is not None:
            valid = torch.arange(x.shape[1])[None, :] < true_lengths[:, None]
            x = x * valid.to(x.device, x.dtype)[:, :, None]
        return x
