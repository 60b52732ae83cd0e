"""The `gan` family and its built-in spaces, on the shapes of digits and waves."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch

import spaces.families.gan  # noqa: F401  (registers the family)
from spaces import load_space
from spaces.families import InvalidArchitecture, build_model, family_trainer
from spaces.families.gan import DEFAULT_IMAGE_GAN, DEFAULT_SEQUENCE_GAN, GAN

DIGITS = (1, 8, 8)
WAVES = (64, 1)


def test_family_declares_its_trainer():
    assert family_trainer("gan") == "gan"


@pytest.mark.parametrize(
    ("arch", "shape"), [(DEFAULT_IMAGE_GAN, DIGITS), (DEFAULT_SEQUENCE_GAN, WAVES)]
)
def test_defaults_build_sample_and_belong_to_their_space(arch, shape):
    space = load_space("gan" if len(shape) == 3 else "gan-rnn")
    assert space.decode(space.encode(arch)) == arch
    torch.manual_seed(0)
    model = build_model("gan", arch, shape, num_outputs=10)
    assert isinstance(model, GAN) and model.training
    samples = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (5, *shape) and samples.dtype == torch.float32
    again = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples, again)
    if len(shape) == 3:
        assert samples.min() >= 0 and samples.max() <= 1
    assert model.discriminator(torch.rand(3, *shape)).shape == (3,)


@pytest.mark.parametrize(
    ("generator", "discriminator", "shape"),
    [
        ("conv", "conv", DIGITS),
        ("dense", "dense", DIGITS),
        ("rnn", "rnn", WAVES),
        ("rnn", "conv", WAVES),
        ("dense", "dense", WAVES),
    ],
)
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_every_network_kind_builds(generator, discriminator, shape, norm):
    arch = {
        "loss": "hinge",
        "latent": 8,
        "generator": generator,
        "g_layers": [{"width": 16}, {"width": 8}],
        "g_norm": norm,
        "discriminator": discriminator,
        "d_layers": [{"width": 8}, {"width": 16}, {"width": 16}],
        "d_norm": norm,
        "bidirectional": True,
        "spectral_norm": True,
    }
    model = build_model("gan", arch, shape, num_outputs=1)
    assert model.sample(4).shape == (4, *shape)
    clone = pickle.loads(pickle.dumps(model))  # spectral norm included
    model.eval()
    clone.eval()
    z = torch.randn(2, model.latent_dim)
    assert torch.equal(model(z), clone(z))


@pytest.mark.parametrize(
    ("change", "shape", "message"),
    [
        ({"loss": "wgan_gp", "d_norm": "batch"}, DIGITS, "d_norm: batch norm"),
        ({"g_layers": [{"width": 8}] * 2}, (1, 6, 6), "divisible by 4"),
        ({"d_layers": [{"width": 8}] * 3}, (1, 4, 4), "d_layers.2"),
        ({"generator": "rnn"}, DIGITS, "generator: 'rnn' needs (T, C)"),
        ({"discriminator": "rnn"}, DIGITS, "discriminator: 'rnn' needs (T, C)"),
        ({"g_lr": 0.0}, DIGITS, "g_lr"),
        ({"loss": "least_squares"}, DIGITS, "loss"),
        ({"g_layers": [{"units": 8}]}, DIGITS, "g_layers.0"),
        ({"extra": 1}, DIGITS, "unknown key"),
        ({}, (1, 64), "generator: 'conv' needs (C, H, W)"),
        ({}, (8,), "gan needs"),
    ],
)
def test_invalid_architectures_raise_one_line(change, shape, message):
    with pytest.raises(InvalidArchitecture, match=re.escape(message)) as info:
        build_model("gan", {**DEFAULT_IMAGE_GAN, **change}, shape, num_outputs=1)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("name", "shape"), [("gan", DIGITS), ("gan-rnn", WAVES)])
def test_sampled_architectures_build_or_are_invalid(name, shape):
    space = load_space(name)
    assert space.description
    rng = np.random.default_rng(0)
    built = invalid = 0
    for _ in range(200):
        arch = space.decode(space.sample(rng))
        try:
            model = build_model("gan", arch, shape, num_outputs=1)
        except InvalidArchitecture:
            invalid += 1
            assert arch["loss"] == "wgan_gp" and arch["d_norm"] == "batch"
        else:
            built += 1
            assert model.options.loss == arch["loss"]
    assert built > 150 and built + invalid == 200
