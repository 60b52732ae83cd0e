"""The sample-quality measure (reference, Frechet distance, collapse) and sample PNGs."""

import math

import numpy as np
import pytest
import torch

from trainers import quality
from trainers.quality import (
    SampleQuality,
    frechet_distance,
    reference_classifier,
    sample_quality,
)
from trainers.sample_plots import sample_grid_png
from trainers.tasks import Task, load_task

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ACCURACY_FLOOR = 0.9
"""Measured: digits 0.972, waves 0.988 on the validation split (seed 0)."""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("reference")


@pytest.fixture(scope="module")
def references(cache_dir):
    """Each task's reference, trained once; checks the global random state is left alone."""
    out = {}
    for name in ("digits", "waves"):
        task = load_task(name, seed=0)
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        reference = reference_classifier(task, cache_dir=cache_dir)
        assert torch.equal(torch.rand(3), expected), "training moved the global random state"
        assert reference.source == "trained"
        out[name] = (task, reference)
    return out


def _candidates(task: Task) -> dict[str, torch.Tensor]:
    real = task.x_test
    low, high = float(task.x_train.min()), float(task.x_train.max())
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(0))
    return {
        "real": real,
        "noise": low + (high - low) * noise,
        "collapsed": real[:1].expand_as(real).clone(),
    }


@pytest.mark.parametrize("name", ["digits", "waves"])
def test_reference_accuracy(references, name):
    _, reference = references[name]
    assert reference.val_accuracy >= ACCURACY_FLOOR
    assert reference.feature_dim == quality.FEATURE_DIM


@pytest.mark.parametrize("name", ["digits", "waves"])
def test_real_data_ranks_far_above_noise_and_collapse(references, name):
    task, reference = references[name]
    scores = {k: sample_quality(reference, v, task.x_val) for k, v in _candidates(task).items()}
    real, noise, collapsed = scores["real"], scores["noise"], scores["collapsed"]
    # measured fd (quality): digits 6.3 (0.96) / 844 (0.16) / 2670 (0.06),
    # waves 1.4 (0.94) / 159 (0.12) / 298 (0.07) for real / noise / collapsed
    assert 20 * real.fd < noise.fd
    assert 20 * real.fd < collapsed.fd
    assert real.quality > 0.8
    assert real.quality > noise.quality + 0.5
    assert real.quality > collapsed.quality + 0.5
    assert all(0.0 < s.quality <= 1.0 for s in scores.values())
    assert not real.collapsed and real.reason == ""
    assert real.coverage == 1.0 and real.confidence > 0.9
    assert collapsed.collapsed and "cover 1 of" in collapsed.reason
    assert collapsed.coverage == pytest.approx(1 / task.num_classes)


@pytest.mark.parametrize("name", ["digits", "waves"])
def test_non_finite_samples_are_the_worst_and_collapsed(references, name):
    task, reference = references[name]
    samples = task.x_test.clone()
    samples[::3] = float("nan")
    samples[1] = float("inf")
    result = sample_quality(reference, samples, task.x_val)
    assert isinstance(result, SampleQuality)
    assert result.collapsed and "NaN or infinite" in result.reason
    assert result.quality == 0.0 and result.fd == math.inf


def test_low_spread_counts_as_collapse(references):
    task, reference = references["digits"]
    # one image per class, each repeated: every class covered, but almost no spread
    idx = torch.stack([torch.nonzero(task.y_test == c)[0, 0] for c in range(10)])
    samples = task.x_test[idx].repeat(30, 1, 1, 1)
    samples = samples + 0.001 * torch.randn(samples.shape, generator=torch.Generator())
    result = sample_quality(reference, samples, task.x_val)
    assert result.coverage == 1.0
    assert result.collapsed and "spread" in result.reason


def test_cache_is_reused_from_memory_and_disk(references, cache_dir):
    task, first = references["waves"]
    mtime = first.path.stat().st_mtime_ns
    assert reference_classifier(task, cache_dir=cache_dir).source == "memory"
    quality._MEMO.clear()
    again = reference_classifier(load_task("waves", seed=0), cache_dir=cache_dir)
    assert again.source == "disk"
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime
    assert again.val_accuracy == first.val_accuracy
    x = task.x_val[:50]
    assert torch.equal(again.features(x), first.features(x))
    files = sorted(p.name for p in cache_dir.iterdir())
    assert len(files) == 2 and files[0].startswith("digits-seed0-1x8x8-")
    assert files[1].startswith("waves-seed0-64x1-")


def _toy_task(seed: int) -> Task:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(300, 5)).astype(np.float32))
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    parts = dict(x_train=x[:200], y_train=y[:200], x_val=x[200:250], y_val=y[200:250])
    parts.update(x_test=x[250:], y_test=y[250:])
    return Task("toy", "classification", (5,), 3, metadata={"seed": seed}, **parts)


def test_training_is_deterministic_and_keyed_by_data(tmp_path):
    a = reference_classifier(_toy_task(0), cache_dir=tmp_path / "a")
    b = reference_classifier(_toy_task(0), cache_dir=tmp_path / "b")
    assert a.source == b.source == "trained" and a.path.name == b.path.name
    for key, value in a.network.state_dict().items():
        assert torch.equal(value, b.network.state_dict()[key])
    c = reference_classifier(_toy_task(1), cache_dir=tmp_path / "a")
    assert c.source == "trained" and c.path != a.path
    assert a.val_accuracy > 0.7
    with pytest.raises(ValueError, match="takes inputs"):
        a.features(torch.zeros(2, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_reference_runs_on_cuda(references, cache_dir):
    task, cpu = references["digits"]
    cuda = reference_classifier(task, cache_dir=cache_dir, device="cuda")
    features = cuda.features(task.x_val[:20])
    assert features.device == torch.device("cpu")
    assert cuda.features(task.x_val[:20].cuda()).device.type == "cuda"
    torch.testing.assert_close(features, cpu.features(task.x_val[:20]), atol=1e-4, rtol=1e-4)
    result = sample_quality(cuda, task.x_test.cuda(), task.x_val.cuda())
    assert not result.collapsed


def test_frechet_distance_is_robust():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(300, 8)))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    same = a[:1].repeat(50, 1)
    assert frechet_distance(same, same) == 0.0
    assert frechet_distance(a[:1], a[1:2]) == pytest.approx(float(((a[0] - a[1]) ** 2).sum()))
    assert frechet_distance(a, a + 2.0) == pytest.approx(8 * 4.0)
    assert math.isfinite(frechet_distance(same, a))
    # the textbook formula, with scipy's matrix square root
    from scipy import linalg

    b = torch.from_numpy(rng.normal(size=(200, 8)) * 1.5 + 0.3)
    ca, cb = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    cross = linalg.sqrtm(ca @ cb).real
    mean = ((a.numpy().mean(0) - b.numpy().mean(0)) ** 2).sum()
    expected = mean + np.trace(ca) + np.trace(cb) - 2 * np.trace(cross)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, torch.full((4, 8), float("nan"))) == math.inf


def test_png_of_images_and_sequences():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(80, 1, 8, 8, generator=gen)
    rgb = torch.rand(10, 3, 16, 16, generator=gen)
    sequences = torch.randn(20, 64, 2, generator=gen)
    sequences[0, 3] = float("nan")
    for samples in (images, rgb, sequences):
        png = sample_grid_png(samples, title="samples")
        assert png.startswith(PNG_SIGNATURE)
        assert len(png) < 100_000
