"""The `vae` family, its built-in spaces and its trainer."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

import spaces.families.vae as vae_family
import trainers.vae as vae_trainer
from spaces import load_space
from spaces.families import InvalidArchitecture, build_model
from spaces.families.vae import DEFAULT_IMAGE_VAE, DEFAULT_SEQUENCE_VAE, VAE
from trainers import load_task
from trainers.tasks import Task
from trainers.vae import VAETrainer, bpd_reward

DIGITS = (1, 8, 8)
WAVES = (64, 1)
CONV = {
    "network": "conv",
    "layers": [{"filters": 16, "downsample": True}, {"filters": 32, "downsample": False}],
    "activation": "gelu",
    "norm": "batch",
    "latent": 4,
    "beta": 0.5,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (several spin against each other on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("reference"))


def _small(name: str, n: int = 320) -> Task:
    """The task cut to ``n`` training and ``n // 2`` validation and test inputs (fast to fit)."""
    task = load_task(name, seed=0)
    m = n // 2
    return Task(
        name=f"{name}-small",
        kind=task.kind,
        input_shape=task.input_shape,
        num_classes=task.num_classes,
        x_train=task.x_train[:n],
        y_train=task.y_train[:n],
        x_val=task.x_val[:m],
        y_val=task.y_val[:m],
        x_test=task.x_test[:m],
        y_test=task.y_test[:m],
    )


@pytest.mark.parametrize(
    ("arch", "shape", "likelihood"),
    [
        (DEFAULT_IMAGE_VAE, DIGITS, "bernoulli"),
        (CONV, DIGITS, "bernoulli"),
        ({**CONV, "kernel": 5, "norm": "layer"}, (3, 7, 5), "bernoulli"),
        (DEFAULT_SEQUENCE_VAE, WAVES, "gaussian"),
        ({**DEFAULT_SEQUENCE_VAE, "scale": 0.1, "norm": "batch"}, (20, 3), "gaussian"),
        ({**DEFAULT_IMAGE_VAE, "likelihood": "gaussian"}, DIGITS, "gaussian"),
    ],
)
def test_builds_and_samples_in_the_data_shape(arch, shape, likelihood) -> None:
    model = build_model("vae", arch, shape, num_outputs=10)
    assert isinstance(model, VAE) and model.likelihood == likelihood
    model.eval()
    samples = model.sample(7, generator=torch.Generator().manual_seed(3))
    assert samples.shape == (7, *shape) and torch.isfinite(samples).all()
    again = model.sample(7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(samples, again)
    if likelihood == "bernoulli":
        assert samples.min() >= 0 and samples.max() <= 1
    nll, kl = model.terms(torch.rand(5, *shape))
    assert nll.shape == kl.shape == (5,) and (kl >= 0).all()
    assert model.reconstruct(torch.rand(3, *shape)).shape == (3, *shape)
    clone = pickle.loads(pickle.dumps(model))
    assert torch.equal(
        clone.sample(2, torch.Generator().manual_seed(1)),
        model.sample(2, torch.Generator().manual_seed(1)),
    )


def test_defaults_are_members_of_the_builtin_spaces() -> None:
    for name, default in (("vae", DEFAULT_IMAGE_VAE), ("vae-seq", DEFAULT_SEQUENCE_VAE)):
        space = load_space(name)
        assert space.family == "vae"
        assert space.decode(space.encode(default)) == default


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        ({**CONV}, "conv needs a \\(C, H, W\\)"),
        ({**DEFAULT_SEQUENCE_VAE, "likelihood": "poisson"}, "likelihood"),
        ({**DEFAULT_SEQUENCE_VAE, "likelihood": "bernoulli", "scale": 0.1}, "scale"),
        ({**DEFAULT_SEQUENCE_VAE, "scale": -1.0}, "scale"),
        ({**DEFAULT_SEQUENCE_VAE, "beta": 0}, "beta"),
        ({**DEFAULT_SEQUENCE_VAE, "latent": 0}, "latent"),
        ({**DEFAULT_SEQUENCE_VAE, "layers": [{"width": 8, "filters": 3}]}, "layers.0"),
        ({**DEFAULT_SEQUENCE_VAE, "kernel": 3}, "kernel"),
        ({**DEFAULT_SEQUENCE_VAE, "depth": 3}, "depth"),
    ],
)
def test_invalid_architectures_are_reported(arch, match) -> None:
    with pytest.raises(InvalidArchitecture, match=match):
        build_model("vae", arch, WAVES, num_outputs=4)


def test_conv_rejects_too_much_downsampling_and_even_kernels() -> None:
    deep = {**CONV, "layers": [{"filters": 4, "downsample": True}] * 3}
    build_model("vae", deep, DIGITS, 10)  # 8 -> 4 -> 2 -> 1
    with pytest.raises(InvalidArchitecture, match="layers.2.downsample"):
        build_model("vae", deep, (1, 4, 4), 10)
    with pytest.raises(InvalidArchitecture, match="kernel"):
        build_model("vae", {**CONV, "kernel": 4}, DIGITS, 10)


@pytest.mark.parametrize(
    ("space_name", "shapes"), [("vae", [DIGITS, WAVES]), ("vae-seq", [WAVES, DIGITS])]
)
def test_random_architectures_build_or_are_invalid(space_name, shapes) -> None:
    space = load_space(space_name)
    rng = np.random.default_rng(0)
    built = {shape: 0 for shape in shapes}
    for i in range(200):
        arch = space.decode(space.sample(rng))
        shape = shapes[0] if i % 4 else shapes[1]  # mostly the space's own kind of data
        try:
            model = build_model("vae", arch, shape, num_outputs=4)
        except InvalidArchitecture:
            assert shape != shapes[0] and arch.get("network") == "conv", arch
            continue
        assert model.sample(2).shape == (2, *shape)
        built[shape] += 1
    assert built[shapes[0]] == 150


def test_likelihoods_match_torch_distributions() -> None:
    torch.manual_seed(0)
    out, x = torch.randn(4, 6), torch.rand(4, 6)
    bern = build_model("vae", DEFAULT_IMAGE_VAE, (1, 2, 3), 2)
    binary = (x > 0.5).float()
    expected = -torch.distributions.Bernoulli(logits=out).log_prob(binary)
    assert torch.allclose(bern.nll(out, binary), expected, atol=1e-5)
    gauss = build_model("vae", {**DEFAULT_SEQUENCE_VAE, "scale": 0.3}, (6,), 2)
    expected = -torch.distributions.Normal(out, 0.3).log_prob(x)
    assert torch.allclose(gauss.nll(out, x), expected, atol=1e-5)


def test_bpd_reward_is_bounded_and_decreasing() -> None:
    values = [bpd_reward(b) for b in (-50.0, -3.0, 0.0, 0.5, 8.0, 1e4)]
    assert all(0 <= v < 1 for v in values) and values == sorted(values, reverse=True)
    assert bpd_reward(0.0) == 0.5 and bpd_reward(float("nan")) == 0.0
    trainer = VAETrainer()
    assert trainer.reward({"bpd": 1.0, "quality": 0.7}, "quality") == 0.7
    assert trainer.reward({"bpd": 1.0, "quality": 0.7}, "bpd") == pytest.approx(1 / 3)


# Configurations whose samples are no longer collapsed after two epochs of 320 examples (the
# shared loop ends a child whose samples are still all alike after half its epochs).
FAST = {
    "digits": CONV,
    "waves": {**DEFAULT_SEQUENCE_VAE, "norm": "batch", "latent": 4, "beta": 0.5},
}


def _fit(name: str, reference_dir: str, **options):
    task = _small(name)
    model = build_model("vae", FAST[name], task.input_shape, task.num_outputs)
    options = {"epochs": 2, "seed": 0, "lr": 3e-3, "batch_size": 16, **options}
    return model, VAETrainer().fit(model, task, reference_dir=reference_dir, **options)


@pytest.mark.parametrize("name", ["digits", "waves"])
def test_fit_two_epochs(name, reference_dir) -> None:
    reports = []
    model, result = _fit(name, reference_dir, report=reports.append)
    assert not result.failure and 0 < result.reward < 1
    assert result.reward == bpd_reward(result.metrics["val_bpd"])
    for key in ("val_bpd", "val_fd", "val_quality", "val_recon", "val_kl", "test_bpd"):
        assert math.isfinite(result.metrics[key]), key
    bpd = result.metrics["val_bpd"]
    assert bpd == pytest.approx(result.metrics["val_recon"] + result.metrics["val_kl"])
    assert [r["epoch"] for r in reports] == [1, 2]
    assert {"train_loss", "train_recon", "train_kl"} <= set(reports[0])
    assert result.artifacts and all(p.endswith(".png") for p in result.artifacts)
    assert all(png.startswith(b"\x89PNG") for png in result.artifacts.values())
    assert result.state_dict and not model.training


def test_fit_with_the_quality_reward(reference_dir) -> None:
    _, result = _fit("digits", reference_dir, metric="quality")
    assert result.metric == "quality" and not result.failure
    assert result.reward == result.metrics["val_quality"] > 0


def test_validation_bpd_falls_with_training_on_digits() -> None:
    """A few epochs on digits lower the validation bound: a real learning signal."""
    task = load_task("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("vae", DEFAULT_IMAGE_VAE, task.input_shape, task.num_outputs)
    trainer = VAETrainer()
    state = trainer.prepare(model, task, lr=3e-3, device=torch.device("cpu"))

    def bpd() -> float:
        model.eval()
        value = trainer.evaluate_extra(model, task.x_val)["bpd"]
        model.train()
        return value

    start = bpd()
    order = torch.Generator().manual_seed(0)
    for _ in range(10):
        perm = torch.randperm(len(task.x_train), generator=order)
        for i in range(0, len(perm), 64):
            trainer.train_step(model, state, task.x_train[perm[i : i + 64]])
    after = bpd()
    assert start > 0.65 and after < 0.61, (start, after)


@pytest.mark.parametrize("name", ["digits", "waves"])
def test_train_step_under_mixed_precision(name, monkeypatch) -> None:
    """bf16 autocast (as on CUDA) leaves the losses float32 and finite; CPU stands in for it."""
    monkeypatch.setattr(
        vae_trainer, "autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16)
    )
    task = _small(name)
    model = build_model("vae", FAST[name], task.input_shape, task.num_outputs)
    trainer = VAETrainer()
    state = trainer.prepare(model, task, lr=3e-3, device=torch.device("cpu"))
    for i in range(2):
        losses = trainer.train_step(model, state, task.x_train[i * 32 : (i + 1) * 32])
        assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())


def test_nan_model_and_absurd_lr_diverge(reference_dir, monkeypatch) -> None:
    task = _small("digits")
    model = build_model("vae", DEFAULT_IMAGE_VAE, task.input_shape, task.num_outputs)
    monkeypatch.setattr(model, "decode", lambda z: torch.full((len(z), *DIGITS), math.nan))
    result = VAETrainer().fit(model, task, epochs=2, seed=0, reference_dir=reference_dir)
    assert result.reward == 0.0 and result.diverged and result.state_dict == {}
    assert result.failure.startswith("diverged"), result.failure

    model = build_model("vae", DEFAULT_IMAGE_VAE, task.input_shape, task.num_outputs)
    result = VAETrainer().fit(model, task, epochs=3, seed=0, lr=1e6, reference_dir=reference_dir)
    assert result.reward == 0.0 and result.failure.startswith("diverged"), result.failure


def test_bernoulli_on_data_outside_the_unit_interval_fails_clearly(reference_dir) -> None:
    task = _small("waves")
    arch = {**DEFAULT_SEQUENCE_VAE, "likelihood": "bernoulli"}
    model = build_model("vae", arch, task.input_shape, task.num_outputs)
    result = VAETrainer().fit(model, task, epochs=2, seed=0, reference_dir=reference_dir)
    assert result.reward == 0.0 and result.epochs == 0 and not result.diverged
    assert result.failure.startswith("likelihood: a Bernoulli likelihood needs data in [0, 1]")
    assert "gaussian" in result.failure


def test_modules_register() -> None:
    from spaces.families import family_trainer
    from trainers import get_trainer

    assert family_trainer("vae") == "vae"
    assert isinstance(get_trainer("vae"), VAETrainer)
    assert vae_family.build_vae is not None and vae_trainer.VAETrainer is VAETrainer
