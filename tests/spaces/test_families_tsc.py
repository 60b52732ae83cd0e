"""The time-series classification families: `inception` (InceptionTime) and `resnet1d`
(Wang et al.'s ResNet), their hand-written defaults and their built-in spaces."""

from __future__ import annotations

import pytest
import torch
import yaml
from torch import nn

from spaces import BUILTIN_DIR, load_space
from spaces.families import InvalidArchitecture, build_model, count_parameters
from spaces.families.inception import DEFAULT_INCEPTION_TIME, InceptionBlock
from spaces.families.resnet1d import DEFAULT_RESNET, ResidualBlock
from tests.spaces.padding import assert_padding_changes_nothing

DEFAULTS = {
    "inception": (DEFAULT_INCEPTION_TIME, "inception_time.yaml"),
    "resnet1d": (DEFAULT_RESNET, "resnet.yaml"),
}

SMALL = {
    "inception": {
        "depth": 3,
        "kernels": "2-5-9",
        "filters": 4,
        "bottleneck": 4,
        "residual_every": 2,
    },
    "resnet1d": {"blocks": [{"filters": 4}, {"filters": 6}, {"filters": 6}], "kernels": "8-5-3"},
}


@pytest.mark.parametrize("family", list(DEFAULTS))
def test_defaults_are_members_of_the_builtin_spaces_and_their_files(family: str) -> None:
    arch, file = DEFAULTS[family]
    space = load_space(family)
    assert space.decode(space.encode(arch)) == arch
    assert yaml.safe_load((BUILTIN_DIR / "defaults" / file).read_text()) == arch


def test_defaults_have_the_reference_networks_parameter_counts() -> None:
    """Univariate input, 2 classes: the counts of the authors' Keras networks.

    InceptionTime: module 1 (1 channel, no bottleneck) 32*70 + 32 + BN 256 = 2,528; modules 2-6
    4,096 + 32*32*70 + 4,096 + 256 = 80,128 each; shortcuts 128 + 256 and 16,384 + 256; head 258.
    ResNet: blocks of 34,112, 206,336 and 263,552 (convolutions with biases); head 258.
    """
    inception = build_model("inception", DEFAULT_INCEPTION_TIME, (150, 1), 2)
    resnet = build_model("resnet1d", DEFAULT_RESNET, (150, 1), 2)
    assert count_parameters(inception) == 420_450
    assert count_parameters(resnet) == 504_258


def test_inception_structure() -> None:
    model = build_model("inception", DEFAULT_INCEPTION_TIME, (24, 1), 2)
    blocks = list(model.blocks)
    assert [len(b.layers) for b in blocks] == [3, 3]
    assert all(isinstance(b, InceptionBlock) and b.shortcut is not None for b in blocks)
    first, second = blocks[0].layers[0], blocks[0].layers[1]
    assert isinstance(first.bottleneck, nn.Identity)  # 1 input channel: no bottleneck
    assert isinstance(second.bottleneck, nn.Conv1d) and second.bottleneck.out_channels == 32
    assert [c.kernel_size[0] for c in first.convs] == [10, 20, 40]
    assert first.out_channels == 128 and model.head.in_features == 128
    # 7 modules, a shortcut every 3: two blocks with one, the last module alone without
    seven = build_model("inception", {**DEFAULT_INCEPTION_TIME, "depth": 7}, (24, 3), 2)
    assert [(len(b.layers), b.shortcut is not None) for b in seven.blocks] == [
        (3, True),
        (3, True),
        (1, False),
    ]
    assert not isinstance(seven.blocks[0].layers[0].bottleneck, nn.Identity)  # 3 channels
    plain = build_model("inception", {**SMALL["inception"], "residual_every": 0}, (9, 2), 2)
    assert [(len(b.layers), b.shortcut) for b in plain.blocks] == [(3, None)]


def test_resnet_shortcuts_project_only_when_the_channels_change() -> None:
    model = build_model("resnet1d", DEFAULT_RESNET, (24, 1), 2)
    shortcuts = [b.shortcut for b in model.blocks if isinstance(b, ResidualBlock)]
    assert [isinstance(s, nn.Sequential) for s in shortcuts] == [True, True, False]
    assert isinstance(shortcuts[2], nn.BatchNorm1d)
    assert [c.kernel_size[0] for c in model.blocks[0].convs] == [8, 5, 3]


@pytest.mark.parametrize("family", list(SMALL))
@pytest.mark.parametrize("steps", [1, 2, 24])
def test_builds_on_short_series_with_long_kernels(family: str, steps: int) -> None:
    """ "Same" padding keeps every length, even with kernels longer than the series."""
    arch = {**SMALL[family], "kernels": "20-40-80" if family == "inception" else "16-10-6"}
    model = build_model(family, arch, (steps, 1), 3).eval()
    with torch.no_grad():
        assert model(torch.randn(2, steps, 1)).shape == (2, 3)


@pytest.mark.parametrize("family", list(SMALL))
def test_padded_series_score_as_they_would_alone(family: str) -> None:
    """Given the true lengths, padding changes nothing: every convolution and the max-pool
    branch read the padding as a series' own ends, and the mean pools the valid steps only."""
    torch.manual_seed(0)
    model = build_model(family, SMALL[family], (16, 3), 3)
    with torch.no_grad():  # batch norm away from the identity, so its shift shows up
        for norm in (m for m in model.modules() if isinstance(m, nn.BatchNorm1d)):
            norm.running_mean.uniform_(-1, 1)
            norm.bias.uniform_(-1, 1)
    model.eval()
    x = torch.randn(4, 16, 3) - 0.5  # negative values, where a zero would win the max-pool
    lengths = torch.tensor([16, 11, 7, 2])
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 0.0
    padded = assert_padding_changes_nothing(model, x, lengths)
    with torch.no_grad():
        for i, n in enumerate(lengths.tolist()):  # a series alone needs no lengths
            alone = model(x[i : i + 1, :n], lengths[i : i + 1])
            assert torch.allclose(alone, model(x[i : i + 1, :n]), atol=1e-6)
        assert not torch.allclose(padded[3], model(x)[3], atol=1e-3)  # without lengths it would


@pytest.mark.parametrize(
    ("family", "change", "message"),
    [
        ("inception", {"kernels": "10,20,40"}, "kernels: expected kernel sizes"),
        ("inception", {"kernels": "10-0"}, "kernels"),
        ("inception", {"depth": 0}, "depth"),
        ("inception", {"bottleneck": -1}, "bottleneck"),
        ("inception", {"stride": 2}, "unknown key(s) stride"),
        ("resnet1d", {"kernels": 8}, "kernels"),
        ("resnet1d", {"blocks": []}, "no layers"),
        ("resnet1d", {"blocks": [{"filters": 0}]}, "blocks.0.filters"),
    ],
)
def test_invalid_architectures_raise(family: str, change: dict, message: str) -> None:
    with pytest.raises(InvalidArchitecture, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_model(family, {**SMALL[family], **change}, (12, 2), 2)
