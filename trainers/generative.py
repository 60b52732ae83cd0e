"""The training loop shared by the generative trainers (``gan``, ``vae``).

Like `SupervisedTrainer` it knows nothing of the model beyond its protocol (`GenerativeModel`):
the task's tensors go to the device whole, batches come from a seeded permutation, and a
subclass says what one training step is and how its reward is made. At a handful of evaluation
epochs the loop draws samples (from seeded latents), scores them against the validation split
with the task's reference classifier (`trainers.quality`), renders a grid of them as a PNG and
keeps the weights of the best-rewarded evaluation that is not collapsed. A loss that becomes
NaN, infinite or explodes, or samples that still collapse onto a few modes once half the epochs
are done, end the child with reward 0 and the reason recorded in ``TrainResult.failure``; the
search goes on. The test split is scored once, with the
kept weights, for reporting only.
"""

from __future__ import annotations

import abc
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

import torch
from torch import nn

from spaces.families.generative import GenerativeModel
from trainers.base import ReportFn, Trainer, TrainerError, TrainResult, count_parameters
from trainers.device import pick_device, seed_everything
from trainers.options import TrainOptions
from trainers.quality import ReferenceClassifier, reference_classifier, sample_quality
from trainers.sample_plots import sample_grid_png
from trainers.tasks import Task

__all__ = ["LOSS_LIMIT", "GenerativeTrainer", "evaluation_epochs"]

LOSS_LIMIT = 1e6
"""A training loss beyond this (in absolute value) counts as divergence."""
EVALUATIONS = 5
"""Evaluations per child: evenly spaced epochs, the last one included."""
QUALITY_METRICS = ("fd", "confidence", "coverage", "quality")
"""What every evaluation reports (see `trainers.quality.sample_quality`)."""


ModelT = TypeVar("ModelT", bound=GenerativeModel)
"""The models a generative trainer trains (its `GenerativeTrainer.model_class`)."""


def evaluation_epochs(epochs: int, evaluations: int = EVALUATIONS) -> list[int]:
    """The 1-based epochs at which samples are scored: evenly spaced, ending at ``epochs``."""
    count = max(1, min(evaluations, epochs))
    return sorted({round(epochs * (i + 1) / count) for i in range(count)})


class GenerativeTrainer(Trainer, Generic[ModelT]):
    """Trains a `GenerativeModel` on a classification task's inputs (labels train only the
    reference classifier that scores samples).

    Subclasses set `model_class`, `losses` and `reward_metrics` and implement `prepare`,
    `train_step` and `reward`; they may add validation metrics through `evaluate_extra`.
    """

    uses_reference = True
    model_class: ClassVar[type[GenerativeModel]]
    """The class of the models it trains (its type argument ``ModelT``)."""
    losses: ClassVar[tuple[str, ...]]
    """Names of the losses `train_step` returns; reported per epoch as ``train_<name>``."""
    extra_metrics: ClassVar[tuple[str, ...]] = ()
    """Names `evaluate_extra` returns; reported as ``val_<name>`` and ``test_<name>``."""

    def check_task(self, model: nn.Module, task: Task) -> None:
        """A `model_class` model and a classification task (its classes train the reference
        classifier)."""
        if not isinstance(model, self.model_class):
            raise TrainerError(
                f"{type(self).__name__} trains {self.model_class.__name__} models, "
                f"got {type(model).__name__}"
            )
        if task.kind != "classification":
            raise TrainerError(
                f"generative families need a classification task (its classes train the "
                f"reference classifier that scores samples); task {task.name!r} is {task.kind!r}"
            )

    def train(
        self,
        model: nn.Module,
        task: Task,
        options: TrainOptions,
        metric: str,
        report: ReportFn | None,
    ) -> TrainResult:
        """Train ``model`` in place and return its best evaluation's result.

        An epoch is one pass over the training split. ``options.seed`` seeds the weights, the
        batch order and the latents of every evaluation; the task's reference classifier is
        cached in ``options.reference_dir`` (default ``runs/cache/reference``). ``model`` is left
        holding the kept weights, in eval mode. ``report`` is called after every epoch with
        ``epoch``, ``train_<loss>`` and, at evaluation epochs, ``val_<metric>`` values and
        ``reward`` (best so far).
        """
        generative = cast(ModelT, model)  # `check_task` made sure
        start = time.perf_counter()
        seed_everything(options.seed)
        dev = pick_device(options.device)
        generative.to(dev)
        x_train, x_val = task.x_train.to(dev), task.x_val.to(dev)
        reference = reference_classifier(task, cache_dir=options.reference_dir, device=dev)
        progress = self._train_epochs(
            generative, task, options, metric, x_train, x_val, reference, report
        )
        metrics = {f"val_{k}": v for k, v in progress.val.items()}
        if progress.state is not None and not progress.failure:
            generative.load_state_dict(progress.state)
            test, _ = self._evaluate(generative, task.x_test.to(dev), reference, options.seed + 1)
            test.pop("failure_reason", None)
            metrics.update({f"test_{k}": v for k, v in test.items()})
        generative.eval()
        return progress.result(model, metrics, metric, time.perf_counter() - start)

    def _train_epochs(
        self,
        model: ModelT,
        task: Task,
        options: TrainOptions,
        metric: str,
        x_train: torch.Tensor,
        x_val: torch.Tensor,
        reference: ReferenceClassifier,
        report: ReportFn | None,
    ) -> _Progress:
        """Every epoch on ``x_train``, evaluating on ``x_val`` at `evaluation_epochs`; stops at
        the first failure."""
        progress = _Progress()
        state = self.prepare(model, task, lr=options.lr, device=x_train.device)
        order = torch.Generator().manual_seed(options.seed)
        evaluate_at = set(evaluation_epochs(options.epochs))
        for epoch in range(1, options.epochs + 1):
            model.train()
            losses = self._train_epoch(model, state, x_train, options.batch_size, order)
            record: dict[str, Any] = {"epoch": epoch}
            record.update({f"train_{k}": v for k, v in losses.items()})
            failure = _divergence(losses, epoch)
            if not failure and epoch in evaluate_at:
                val, failure = self._evaluation(
                    model, task, x_val, reference, options, metric, epoch, progress
                )
                record.update(val)
            if progress.state is not None:
                record["reward"] = progress.value
            progress.history.append(record)
            if failure:
                record["failure"] = progress.failure = failure
                break
            if report is not None:
                report(dict(record))
        return progress

    def _evaluation(
        self,
        model: ModelT,
        task: Task,
        x_val: torch.Tensor,
        reference: ReferenceClassifier,
        options: TrainOptions,
        metric: str,
        epoch: int,
        progress: _Progress,
    ) -> tuple[dict[str, Any], str]:
        """Score samples of epoch ``epoch`` against ``x_val``, render them into
        ``progress.artifacts`` and keep the weights if they are the best not collapsed; the
        ``val_*`` values and why the child fails (or empty)."""
        val, samples = self._evaluate(model, x_val, reference, options.seed)
        collapse = val.pop("failure_reason", "")
        progress.artifacts[f"samples/epoch-{epoch:03d}.png"] = sample_grid_png(
            samples, title=f"{task.name}, epoch {epoch}"
        )
        if not collapse:
            value = self.reward(val, metric)
            if progress.state is None or value > progress.value:
                progress.value, progress.epoch, progress.val = value, epoch, dict(val)
                progress.state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
        # early samples of any generator look alike: collapse counts once half the epochs are
        # done; before that a collapsed evaluation is only never kept
        failing = collapse.startswith("diverged") or (bool(collapse) and 2 * epoch > options.epochs)
        return {f"val_{k}": v for k, v in val.items()}, collapse if failing else ""

    @abc.abstractmethod
    def prepare(self, model: ModelT, task: Task, *, lr: float, device: torch.device) -> Any:
        """Whatever `train_step` needs across steps (optimizers, step counters, a scaler)."""

    @abc.abstractmethod
    def train_step(self, model: ModelT, state: Any, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step on ``batch``; each of `losses` as a detached scalar tensor."""

    @abc.abstractmethod
    def reward(self, val: dict[str, float], metric: str) -> float:
        """The reward (larger is better, bounded) of one evaluation's validation metrics."""

    def evaluate_extra(self, model: ModelT, x: torch.Tensor) -> dict[str, float]:
        """Family-specific metrics of ``model`` on data ``x`` (e.g. the VAE's bits per dim)."""
        return {}

    def _train_epoch(
        self,
        model: ModelT,
        state: Any,
        x: torch.Tensor,
        batch_size: int,
        order: torch.Generator,
    ) -> dict[str, float]:
        perm = torch.randperm(len(x), generator=order).to(x.device)
        if len(perm) % batch_size == 1 and len(perm) > 1:
            perm = perm[:-1]  # a batch of one breaks batch norm
        sums: dict[str, torch.Tensor] = {}
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            for name, value in self.train_step(model, state, x[idx]).items():
                sums[name] = sums.get(name, 0.0) + value.detach().float() * len(idx)
        return {name: (total / len(perm)).item() for name, total in sums.items()}

    @torch.no_grad()
    def _evaluate(
        self,
        model: ModelT,
        x: torch.Tensor,
        reference: ReferenceClassifier,
        seed: int,
    ) -> tuple[dict[str, Any], torch.Tensor]:
        """Quality of as many samples as ``x`` has rows, plus `evaluate_extra`; the samples."""
        model.eval()
        samples = model.sample(len(x), generator=torch.Generator().manual_seed(seed))
        quality = sample_quality(reference, samples, x)
        val: dict[str, Any] = {k: float(getattr(quality, k)) for k in QUALITY_METRICS}
        val.update(self.evaluate_extra(model, x))
        if not torch.isfinite(samples).all():
            val["failure_reason"] = "diverged: the generated samples hold NaN or infinity"
        elif quality.collapsed:
            val["failure_reason"] = f"mode collapse: {quality.reason}"
        model.train()
        return val, samples


@dataclass
class _Progress:
    """What the epochs so far produced: their records, sample grids, the best evaluation not
    collapsed with its weights, and why the child failed (empty: it did not)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    value: float = 0.0
    epoch: int = 0
    val: dict[str, float] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None
    failure: str = ""

    def result(
        self, model: nn.Module, metrics: dict[str, float], metric: str, seconds: float
    ) -> TrainResult:
        """The `TrainResult` of a finished training."""
        return TrainResult(
            reward=0.0 if self.failure else self.value,
            val_accuracy=0.0,
            test_accuracy=None,
            best_epoch=self.epoch,
            epochs=len(self.history),
            params=count_parameters(model),
            train_seconds=seconds,
            history=self.history,
            state_dict={} if self.failure else (self.state or {}),
            diverged=self.failure.startswith("diverged"),
            metrics=metrics,
            metric=metric,
            failure=self.failure,
            artifacts=self.artifacts,
        )


def _divergence(losses: dict[str, float], epoch: int) -> str:
    for name, value in losses.items():
        if not math.isfinite(value) or abs(value) > LOSS_LIMIT:
            return f"diverged: train_{name} = {value:.4g} at epoch {epoch}"
    return ""
