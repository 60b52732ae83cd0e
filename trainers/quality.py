"""Sample quality of generative models, measured with a per-task reference classifier.

No pretrained network is downloaded: each classification task gets a small classifier trained
once on its own training split (`reference_classifier`), cached on disk and in memory. Its
compact feature layer gives a Frechet distance between samples and real data (the FID formula
in the task's own feature space), and its class probabilities give the samples' confidence and
class coverage (`sample_quality`).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainers.tasks import Task

__all__ = [
    "DEFAULT_CACHE_DIR",
    "FEATURE_DIM",
    "ReferenceClassifier",
    "SampleQuality",
    "frechet_distance",
    "reference_classifier",
    "sample_quality",
]

DEFAULT_CACHE_DIR = os.path.join("runs", "cache", "reference")
"""Where reference classifiers are cached, relative to the working directory."""
FEATURE_DIM = 32
"""Width of the reference's feature layer: small, so a few hundred samples fit a stable
Gaussian."""
CACHE_VERSION = 1
"""Bumped whenever the architecture or training recipe changes, so stale caches are retrained."""
BATCH = 512
"""Batch size of the reference's inference."""
TRAIN_BATCH = 64
MAX_EPOCHS = 20
MAX_STEPS = 2000
"""Training budget: ``MAX_EPOCHS`` passes, but no more than ``MAX_STEPS`` steps."""
COVERAGE_SHARE = 0.25
"""A class counts as covered when it gets at least this fraction of the uniform share
(``N / num_classes``) of the samples' predicted labels."""
QUALITY_SCALE = 0.1
"""``quality = 1 / (1 + fd / scale)`` with ``scale`` this fraction of the real features' total
variance: samples whose fd is a tenth of the real data's own spread score 0.5."""
SPREAD_FLOOR = 0.05
"""Collapse when the samples' within-class feature spread (mean squared distance to their
predicted class's mean) is below this fraction of the real data's: each class shrunk to a few
points."""

_MEMO: dict[tuple[str, str], ReferenceClassifier] = {}
_KEYS: weakref.WeakKeyDictionary[Task, str] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class _Network(nn.Module):
    """Standardisation, a body ending in the feature layer, and a linear classification head."""

    mean: torch.Tensor
    """Per-channel means of the training inputs (a buffer)."""
    std: torch.Tensor
    """Per-channel standard deviations of the training inputs (a buffer)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.kind = _kind(self.input_shape)
        channels = self.input_shape[0] if self.kind == "image" else self.input_shape[-1]
        if self.kind == "mlp":
            channels = 1
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        if self.kind == "image":
            c, h, w = self.input_shape
            first_stride = 2 if min(h, w) >= 24 else 1
            self.body = nn.Sequential(
                nn.Conv2d(c, 16, 3, stride=first_stride, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2 if min(h, w) >= 8 else 1, padding=1),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(4),
                nn.Flatten(),
                nn.Linear(32 * 16, FEATURE_DIM),
            )
        elif self.kind == "sequence":
            t, c = self.input_shape
            self.body = nn.Sequential(
                nn.Conv1d(c, 16, 5, padding=2),
                nn.ReLU(),
                nn.Conv1d(16, 32, 5, stride=2 if t >= 16 else 1, padding=2),
                nn.ReLU(),
                nn.AdaptiveAvgPool1d(8),
                nn.Flatten(),
                nn.Linear(32 * 8, FEATURE_DIM),
            )
        else:
            self.body = nn.Sequential(
                nn.Flatten(),
                nn.Linear(math.prod(self.input_shape), 128),
                nn.ReLU(),
                nn.Linear(128, FEATURE_DIM),
            )
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(FEATURE_DIM, num_classes))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "image":
            return (x - self.mean[:, None, None]) / self.std[:, None, None]
        if self.kind == "sequence":  # (N, T, C) -> (N, C, T) for the 1-D convolutions
            return ((x - self.mean) / self.std).transpose(1, 2)
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.standardise(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def fit_standardisation(self, x: torch.Tensor) -> None:
        dims = {"image": (0, 2, 3), "sequence": (0, 1)}.get(self.kind)
        if dims is None:
            mean, std = x.mean().reshape(1), x.std().reshape(1)
        else:
            mean, std = x.mean(dim=dims), x.std(dim=dims)
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))


def _kind(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return "image"
    if len(shape) == 2:
        return "sequence"
    return "mlp"


class ReferenceClassifier:
    """A trained reference network for one task, frozen and in eval mode.

    Attributes:
        task_name: The task it was trained on.
        input_shape: Shape of one input, without the batch dimension.
        num_classes: Number of classes it predicts.
        val_accuracy: Its accuracy on the task's validation split (a low value makes the
            quality measure meaningless).
        feature_dim: Width of `features`.
        source: ``"trained"``, ``"disk"`` (loaded from the cache file) or ``"memory"``.
        path: The cache file.
    """

    def __init__(
        self,
        network: _Network,
        *,
        task_name: str,
        num_classes: int,
        val_accuracy: float,
        source: str,
        path: Path,
    ) -> None:
        self.network = network.eval().requires_grad_(False)
        self.task_name = task_name
        self.input_shape = network.input_shape
        self.num_classes = num_classes
        self.val_accuracy = float(val_accuracy)
        self.feature_dim = FEATURE_DIM
        self.source = source
        self.path = path

    @property
    def device(self) -> torch.device:
        """Where the network's weights live."""
        return self.network.mean.device

    def to(self, device: str | torch.device) -> ReferenceClassifier:
        """A copy on ``device`` (sharing nothing mutable with this one)."""
        with torch.random.fork_rng(devices=[]):
            network = _Network(self.input_shape, self.num_classes)
        network.load_state_dict(self.network.state_dict())
        return ReferenceClassifier(
            network.to(device),
            task_name=self.task_name,
            num_classes=self.num_classes,
            val_accuracy=self.val_accuracy,
            source=self.source,
            path=self.path,
        )

    @torch.no_grad()
    def _batched(self, x: torch.Tensor, probabilities: bool) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"reference of task {self.task_name!r} takes inputs {self.input_shape}, "
                f"got batch {tuple(x.shape)}"
            )
        out = []
        for i in range(0, len(x), BATCH):
            batch = x[i : i + BATCH].to(self.device, torch.float32)
            h = self.network.features(batch)
            out.append(self.network.head(h).softmax(dim=1) if probabilities else h)
        if not out:
            width = self.num_classes if probabilities else self.feature_dim
            return torch.zeros(0, width, device=x.device)
        return torch.cat(out).to(x.device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature-layer activations ``(N, feature_dim)`` of inputs ``x``, on ``x``'s device."""
        return self._batched(x, probabilities=False)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, num_classes)`` of inputs ``x``, on ``x``'s device."""
        return self._batched(x, probabilities=True)


def reference_classifier(
    task: Task,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> ReferenceClassifier:
    """The reference classifier of ``task``: loaded from memory or disk, else trained once.

    It is trained on CPU (seeded, deterministic, leaving the global random state untouched) on
    the task's training split and cached under ``cache_dir`` (default `DEFAULT_CACHE_DIR`) in a
    file keyed by the task's name, data seed, input shape and a hash of its training data. The
    file is written atomically, so concurrent workers training the same reference are harmless.

    Args:
        task: A classification task.
        cache_dir: Folder of the cache files.
        device: Where the returned classifier runs; default CPU.
    """
    if task.kind != "classification" or task.num_classes < 2:
        raise ValueError(
            f"a reference classifier needs a classification task with 2 or more classes; "
            f"task {task.name!r} is {task.kind!r} with {task.num_classes} classes"
        )
    path = Path(cache_dir if cache_dir is not None else DEFAULT_CACHE_DIR) / _cache_name(task)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    memo_key = (str(path.resolve()), str(dev))
    with _LOCK:
        cached = _MEMO.get(memo_key)
        if cached is not None and path.exists():
            return _relabel(cached, "memory")
        reference = _load(path, task)
        if reference is None:
            reference = _train(task, path)
            _save(reference, path)
        if dev != reference.device:
            reference = reference.to(dev)
        _MEMO[memo_key] = reference
        return reference


def _relabel(reference: ReferenceClassifier, source: str) -> ReferenceClassifier:
    copy = object.__new__(ReferenceClassifier)
    copy.__dict__.update(reference.__dict__)
    copy.source = source
    return copy


def _cache_name(task: Task) -> str:
    key = _KEYS.get(task)
    if key is None:
        digest = hashlib.sha256()
        for t in (task.x_train, task.y_train):
            digest.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
        key = digest.hexdigest()[:16]
        _KEYS[task] = key
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", task.name)[-60:].strip("._") or "task"
    shape = "x".join(str(d) for d in task.input_shape)
    return f"{name}-seed{task.metadata.get('seed')}-{shape}-{key}-v{CACHE_VERSION}.pt"


def _load(path: Path, task: Task) -> ReferenceClassifier | None:
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        with torch.random.fork_rng(devices=[]):
            network = _Network(task.input_shape, task.num_classes)
        network.load_state_dict(payload["state_dict"])
        val_accuracy = float(payload["val_accuracy"])
    except Exception:  # a truncated or foreign file: train afresh and overwrite it
        return None
    return ReferenceClassifier(
        network,
        task_name=task.name,
        num_classes=task.num_classes,
        val_accuracy=val_accuracy,
        source="disk",
        path=path,
    )


def _save(reference: ReferenceClassifier, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state_dict": {k: v.cpu() for k, v in reference.network.state_dict().items()},
        "val_accuracy": reference.val_accuracy,
        "task": reference.task_name,
        "input_shape": list(reference.input_shape),
        "num_classes": reference.num_classes,
        "version": CACHE_VERSION,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _train(task: Task, path: Path) -> ReferenceClassifier:
    x = task.x_train.detach().to("cpu", torch.float32)
    y = task.y_train.detach().to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        network = _Network(task.input_shape, task.num_classes)
        network.fit_standardisation(x)
        order = torch.Generator().manual_seed(0)
        optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
        steps_per_epoch = max(1, math.ceil(len(x) / TRAIN_BATCH))
        epochs = max(1, min(MAX_EPOCHS, MAX_STEPS // steps_per_epoch))
        network.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=order)
            for i in range(0, len(x), TRAIN_BATCH):
                idx = perm[i : i + TRAIN_BATCH]
                loss = nn.functional.cross_entropy(network(x[idx]), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    reference = ReferenceClassifier(
        network,
        task_name=task.name,
        num_classes=task.num_classes,
        val_accuracy=0.0,
        source="trained",
        path=path,
    )
    predicted = reference.probabilities(task.x_val.detach().cpu()).argmax(dim=1)
    reference.val_accuracy = (predicted == task.y_val.cpu()).float().mean().item()
    return reference


def _gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = features.mean(axis=0)
    if len(features) < 2:
        return mean, np.zeros((features.shape[1], features.shape[1]))
    return mean, np.atleast_2d(np.cov(features, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets ``(N, F)`` (the FID formula).

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})``, in float64, with the trace
    term taken from the eigenvalues of the symmetric ``S_a^{1/2} S_b S_a^{1/2}`` (which has the
    same ones), so it is never NaN and never negative. A set of fewer than two rows has zero
    covariance; non-finite features give ``inf``.
    """
    a = _as_float64(features_a)
    b = _as_float64(features_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ValueError(f"expected two non-empty (N, F) sets, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    mu_a, cov_a = _gaussian(a)
    mu_b, cov_b = _gaussian(b)
    root_a = _psd_sqrt(cov_a)
    product = root_a @ cov_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)).sum()
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(0.0, value) if math.isfinite(value) else math.inf


def _within_class_spread(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared distance of features to their predicted class's mean (trace of the pooled
    within-class covariance)."""
    total = 0.0
    for label in np.unique(labels):
        group = features[labels == label]
        total += float(((group - group.mean(axis=0)) ** 2).sum())
    return total / max(1, len(features))


def _as_float64(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True)
class SampleQuality:
    """How good a set of samples is, judged by a task's reference classifier.

    Attributes:
        fd: Frechet distance between the samples' and the real data's reference features
            (0 is best; ``inf`` for non-finite samples).
        confidence: Mean of the samples' largest class probability.
        coverage: Fraction of the classes covered by the samples' predicted labels (a class
            counts when it gets at least `COVERAGE_SHARE` of the uniform share).
        quality: ``1 / (1 + fd / scale)`` in ``(0, 1]``, higher is better, where ``scale`` is
            `QUALITY_SCALE` times the trace of the real features' covariance (their total
            variance): fd is measured in units of the real data's own spread, which makes
            values comparable across tasks. 0 for non-finite samples.
        collapsed: Mode collapse (see `sample_quality`).
        reason: Why the samples count as collapsed; empty when they do not.
    """

    fd: float
    confidence: float
    coverage: float
    quality: float
    collapsed: bool
    reason: str = ""


def sample_quality(
    reference: ReferenceClassifier, samples: torch.Tensor, real: torch.Tensor
) -> SampleQuality:
    """Score generated ``samples`` against ``real`` data of the same task.

    The samples count as collapsed when any sample is NaN or infinite, when their predicted
    labels cover at most ``max(1, num_classes // 5)`` classes (one of up to 9 classes, two of
    10 to 14, ...), or when their within-class feature spread is below `SPREAD_FLOOR` of the
    real data's (every class shrunk to a few points). Real data and a generator that matches it
    cover every class with the real spread, so they are never flagged.
    """
    samples = samples.detach()
    if samples.numel() == 0:
        raise ValueError("no samples to score")
    if not bool(torch.isfinite(samples).all()):
        bad = int((~torch.isfinite(samples.reshape(len(samples), -1))).any(dim=1).sum())
        return SampleQuality(
            fd=math.inf,
            confidence=0.0,
            coverage=0.0,
            quality=0.0,
            collapsed=True,
            reason=f"{bad} of {len(samples)} samples are NaN or infinite",
        )
    f_samples = reference.features(samples)
    f_real = reference.features(real.detach())
    fd = frechet_distance(f_samples, f_real)
    real_spread = float(np.trace(_gaussian(_as_float64(f_real))[1]))
    scale = max(QUALITY_SCALE * real_spread, 1e-12)
    quality = 0.0 if not math.isfinite(fd) else 1.0 / (1.0 + fd / scale)

    probabilities = reference.network.head(f_samples.to(reference.device)).softmax(dim=1)
    confidence = probabilities.max(dim=1).values.mean().item()
    labels = probabilities.argmax(dim=1).cpu()
    counts = torch.bincount(labels, minlength=reference.num_classes)
    share = COVERAGE_SHARE * len(samples) / reference.num_classes
    covered = int((counts.float() >= share).sum())
    coverage = covered / reference.num_classes

    real_labels = reference.network.head(f_real.to(reference.device)).argmax(dim=1).cpu()
    spread = _within_class_spread(_as_float64(f_samples), labels.numpy())
    real_within = _within_class_spread(_as_float64(f_real), real_labels.numpy())
    limit = max(1, reference.num_classes // 5)
    reason = ""
    if covered <= limit:
        top = int(counts.argmax())
        reason = (
            f"samples cover {covered} of {reference.num_classes} classes "
            f"({int(counts[top])} of {len(samples)} predicted as class {top})"
        )
    elif spread < SPREAD_FLOOR * real_within:
        reason = (
            f"within-class feature spread of the samples is {spread / real_within:.3g} of the "
            f"real data's (floor {SPREAD_FLOOR})"
        )
    return SampleQuality(
        fd=fd,
        confidence=confidence,
        coverage=coverage,
        quality=quality,
        collapsed=bool(reason),
        reason=reason,
    )
