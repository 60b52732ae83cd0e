"""The `vae` family and its built-in spaces."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from spaces import load_space
from spaces.families import InvalidArchitecture, build_model
from spaces.families.vae import DEFAULT_IMAGE_VAE, DEFAULT_SEQUENCE_VAE, VAE
from tests.examples import DIGITS, SMALL_CONV_VAE

WAVES = (64, 1)


@pytest.mark.parametrize(
    ("arch", "shape", "likelihood"),
    [
        (DEFAULT_IMAGE_VAE, DIGITS, "bernoulli"),
        (SMALL_CONV_VAE, DIGITS, "bernoulli"),
        ({**SMALL_CONV_VAE, "kernel": 5, "norm": "layer"}, (3, 7, 5), "bernoulli"),
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
        ({**SMALL_CONV_VAE}, "conv needs a \\(C, H, W\\)"),
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
    deep = {**SMALL_CONV_VAE, "layers": [{"filters": 4, "downsample": True}] * 3}
    build_model("vae", deep, DIGITS, 10)  # 8 -> 4 -> 2 -> 1
    with pytest.raises(InvalidArchitecture, match="layers.2.downsample"):
        build_model("vae", deep, (1, 4, 4), 10)
    with pytest.raises(InvalidArchitecture, match="kernel"):
        build_model("vae", {**SMALL_CONV_VAE, "kernel": 4}, DIGITS, 10)


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
