"""Fast tests of the model families, parametrised over the family registry."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from spaces import families
from spaces.families import (
    ACTIVATIONS,
    GenerativeModel,
    InvalidArchitecture,
    _registry,
    build_model,
    count_parameters,
    get_family,
    list_families,
    register_family,
)
from spaces.families.gan import DEFAULT_IMAGE_GAN, DEFAULT_SEQUENCE_GAN
from spaces.families.vae import DEFAULT_IMAGE_VAE, DEFAULT_SEQUENCE_VAE

DIGITS = (1, 8, 8)
SEQUENCE = (12, 3)

# A representative architecture per family, and the input shapes it must build for.
EXAMPLES: dict[str, tuple[dict, list[tuple[int, ...]]]] = {
    "cnn": (
        {
            "layers": [
                {
                    "filters": 16,
                    "kernel": 3,
                    "downsample": "stride",
                    "activation": "relu",
                    "batchnorm": True,
                    "residual": True,
                },
                {
                    "filters": 16,
                    "kernel": 5,
                    "downsample": "none",
                    "activation": "gelu",
                    "batchnorm": False,
                    "residual": True,
                },
                {
                    "filters": 32,
                    "kernel": 3,
                    "downsample": "maxpool",
                    "activation": "elu",
                    "batchnorm": True,
                    "residual": False,
                },
            ],
            "head": 64,
        },
        [DIGITS],
    ),
    "mlp": (
        {
            "layers": [
                {"width": 64, "activation": "relu", "dropout": 0.1},
                {"width": 32, "activation": "tanh", "dropout": 0.0},
            ]
        },
        [DIGITS, SEQUENCE],
    ),
    "rnn": (
        {
            "cell": "lstm",
            "layers": [
                {"units": 40, "activation": "tanh"},
                {"units": 0},
                {"units": 24, "activation": "relu"},
            ],
        },
        [DIGITS, SEQUENCE],
    ),
    "cnn1d": (
        {
            "layers": [
                {"filters": 8, "kernel": 3, "batchnorm": True, "downsample": "stride"},
                {"filters": 8, "kernel": 5, "activation": "gelu", "downsample": "maxpool"},
            ],
            "dropout": 0.1,
            "readout": "attention",
        },
        [DIGITS, SEQUENCE],
    ),
    "tdnn": (
        {
            "layers": [{"channels": 8, "kernel": 3}, {"channels": 6, "kernel": 2}],
            "dilation": "double",
            "residual": True,
            "readout": "last",
        },
        [DIGITS, SEQUENCE],
    ),
    "hybrid": (
        {
            "conv": [{"filters": 8, "kernel": 3, "downsample": "maxpool"}],
            "cell": "mgu",
            "bidirectional": True,
            "layers": [{"units": 6, "activation": "tanh"}],
            "readout": "mean",
        },
        [DIGITS, SEQUENCE],
    ),
    "inception": (
        {"depth": 2, "kernels": "3-6", "filters": 4, "bottleneck": 4, "residual_every": 2},
        [DIGITS, SEQUENCE],
    ),
    "resnet1d": ({"blocks": [{"filters": 4}, {"filters": 6}], "kernels": "5-3"}, [SEQUENCE]),
    # generative families: the default architectures, images and sequences
    "gan": (DEFAULT_IMAGE_GAN, [DIGITS]),
    "gan-sequence": (DEFAULT_SEQUENCE_GAN, [SEQUENCE]),
    "vae": (DEFAULT_IMAGE_VAE, [DIGITS]),
    "vae-sequence": (DEFAULT_SEQUENCE_VAE, [SEQUENCE]),
}

CASES = [
    pytest.param(example, shape, id=f"{example}-{'x'.join(map(str, shape))}")
    for example, (_, shapes) in EXAMPLES.items()
    for shape in shapes
]


def _family(example: str) -> str:
    return example.removesuffix("-sequence")


def test_every_family_has_an_example():
    assert set(list_families()) == {_family(e) for e in EXAMPLES}


def _output_and_loss(model: nn.Module, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """A predictor's logits and cross-entropy; a generative model's samples from given latents
    (the generator or decoder's forward) and a loss on them."""
    if isinstance(model, GenerativeModel):
        out = model(torch.randn(4, model.latent_dim))
        assert out.shape == (4, *shape)
        return out, out.square().mean()
    out = model(torch.randn(4, *shape))
    assert out.shape == (4, 5)
    return out, nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 4]))


@pytest.mark.parametrize(("example", "shape"), CASES)
def test_builds_trains_and_stays_in_train_mode(example, shape):
    torch.manual_seed(0)
    model = build_model(_family(example), EXAMPLES[example][0], shape, num_outputs=5)
    assert isinstance(model, nn.Module)
    assert model.training and all(m.training for m in model.modules())
    assert count_parameters(model) > 0

    _, loss = _output_and_loss(model, shape)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert torch.isfinite(_output_and_loss(model, shape)[0]).all()


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_model_pickles(example):
    shape = EXAMPLES[example][1][0]
    model = build_model(_family(example), EXAMPLES[example][0], shape, num_outputs=3)
    clone = pickle.loads(pickle.dumps(model))
    model.eval()
    clone.eval()
    if isinstance(model, GenerativeModel):
        draw = [m.sample(2, generator=torch.Generator().manual_seed(0)) for m in (model, clone)]
        assert torch.equal(*draw)
        return
    x = torch.randn(2, *shape)
    assert torch.equal(model(x), clone(x))


@pytest.mark.parametrize(
    ("family", "arch", "shape", "message"),
    [
        pytest.param(
            "cnn",
            {"layers": [{"filters": 8, "downsample": "maxpool"}] * 4},
            DIGITS,
            "layers.3.downsample",
            id="cnn-maxpool-below-1x1",
        ),
        pytest.param(
            "cnn",
            {"layers": [{"filters": 8, "downsample": "stride"}] * 4},
            DIGITS,
            "below 1x1",
            id="cnn-stride-below-1x1",
        ),
        pytest.param("cnn", {"layers": [{"filters": 8}]}, (8,), "(C, H, W)", id="cnn-1d-input"),
        pytest.param(
            "cnn",
            {"layers": [{"filters": 8, "activation": "swish"}]},
            DIGITS,
            "unknown activation 'swish'",
            id="cnn-unknown-activation",
        ),
        pytest.param("cnn", {"layers": []}, DIGITS, "no layers", id="cnn-empty"),
        pytest.param(
            "cnn", {"layers": [{"filters": 8, "kernel": 4}]}, DIGITS, "odd", id="cnn-even-kernel"
        ),
        pytest.param(
            "cnn", {"layers": [{"filters": 8}], "head": "big"}, DIGITS, "head", id="cnn-bad-head"
        ),
        pytest.param(
            "cnn", {"layers": [{"filter": 8}]}, DIGITS, "unknown key(s) filter", id="cnn-typo"
        ),
        pytest.param(
            "mlp",
            {"layers": [{"width": 0}]},
            DIGITS,
            "layers.0.width",
            id="mlp-zero-width",
        ),
        pytest.param(
            "mlp",
            {"layers": [{"width": 8, "dropout": 1.0}]},
            DIGITS,
            "layers.0.dropout",
            id="mlp-bad-dropout",
        ),
        pytest.param(
            "mlp",
            {"layers": [{"width": 8, "activation": "softmax"}]},
            DIGITS,
            "unknown activation",
            id="mlp-unknown-activation",
        ),
        pytest.param(
            "rnn",
            {"cell": "gru", "layers": [{"units": 0}, {"units": 0}]},
            SEQUENCE,
            "every recurrent layer has 0 units",
            id="rnn-all-zero-units",
        ),
        pytest.param(
            "rnn",
            {"cell": "elman", "layers": [{"units": 8}]},
            SEQUENCE,
            "cell",
            id="rnn-unknown-cell",
        ),
        pytest.param(
            "rnn",
            {"cell": "rnn", "layers": [{"units": 8, "activation": "cube"}]},
            SEQUENCE,
            "layers.0.activation",
            id="rnn-unknown-activation",
        ),
        pytest.param("rnn", {"layers": [{"units": 8}]}, (1, 2, 3, 4), "input", id="rnn-4d-input"),
    ],
)
def test_invalid_architectures_raise_one_line(family, arch, shape, message):
    with pytest.raises(InvalidArchitecture) as info:
        build_model(family, arch, shape, num_outputs=10)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


def test_dry_run_failures_become_invalid_architecture(monkeypatch):
    monkeypatch.setattr(_registry, "_FAMILIES", dict(_registry._FAMILIES))

    @register_family("wrong-width")
    def build_wrong(arch, input_shape, num_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, num_outputs + 1))

    @register_family("bad-matmul")
    def build_bad(arch, input_shape, num_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(7, num_outputs))

    @register_family("empty")
    def build_empty(arch, input_shape, num_outputs):
        return nn.Flatten()

    with pytest.raises(InvalidArchitecture, match=r"output \(2, 4\), expected \(2, 3\)"):
        build_model("wrong-width", {}, DIGITS, 3)
    with pytest.raises(InvalidArchitecture, match="dry forward pass failed"):
        build_model("bad-matmul", {}, DIGITS, 3)
    with pytest.raises(InvalidArchitecture, match="empty"):
        build_model("empty", {}, DIGITS, 3)
    assert "wrong-width" in list_families()


def test_registry_fails_loudly():
    with pytest.raises(ValueError, match="already registered"):
        register_family("cnn")(lambda arch, input_shape, num_outputs: nn.Identity())
    assert get_family("cnn") is families.cnn.build_cnn
    with pytest.raises(ValueError, match="unknown family 'transformer'; known families: cnn"):
        get_family("transformer")
    with pytest.raises(ValueError, match="unknown family"):
        build_model("transformer", {}, DIGITS, 10)


def test_bad_shapes_and_outputs():
    arch = EXAMPLES["mlp"][0]
    with pytest.raises(InvalidArchitecture, match="num_outputs"):
        build_model("mlp", arch, DIGITS, 0)
    with pytest.raises(InvalidArchitecture, match="input_shape"):
        build_model("mlp", arch, (1, 0, 8), 10)


def test_activation_table():
    assert set(ACTIVATIONS) == {"relu", "elu", "gelu", "tanh", "sigmoid", "leaky_relu"}
    for name in ACTIVATIONS:
        arch = {"layers": [{"width": 4, "activation": name}]}
        assert build_model("mlp", arch, (3,), 2)(torch.randn(2, 3)).shape == (2, 2)


def _leaky_slopes(model: nn.Module) -> set[float]:
    return {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}


def test_leaky_relu_slope_is_the_gan_convention_only_in_gans():
    mlp = build_model("mlp", {"layers": [{"width": 4, "activation": "leaky_relu"}]}, (3,), 2)
    assert _leaky_slopes(mlp) == {0.01}
    gan = build_model("gan", {**DEFAULT_IMAGE_GAN, "d_activation": "leaky_relu"}, DIGITS, 10)
    assert _leaky_slopes(gan) == {0.2}


def test_rnn_reads_images_row_by_row():
    model = build_model("rnn", {"cell": "rnn", "layers": [{"units": 4}]}, (2, 5, 3), 1)
    x = torch.arange(2 * 2 * 5 * 3, dtype=torch.float32).reshape(2, 2, 5, 3)
    seq = model.to_sequence(x)
    assert seq.shape == (2, 5, 6)  # H steps of C * W features
    assert torch.equal(seq[0, 1], torch.cat([x[0, 0, 1], x[0, 1, 1]]))


def test_cnn_residual_projection_and_defaults():
    arch = {"layers": [{"filters": 4, "residual": True}, {"filters": 8, "residual": True}]}
    model = build_model("cnn", arch, (3, 8, 8), 2)
    assert isinstance(model[0].skip, nn.Sequential)  # 3 -> 4 channels: projected
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 2)
    same = build_model("cnn", {"layers": [{"filters": 1, "residual": True}]}, DIGITS, 2)
    assert isinstance(same[0].skip, nn.Identity)
