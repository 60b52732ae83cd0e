"""The shared sequence suite: every registered family, every task shape, one training step.

Task shapes: univariate (T, 1), multivariate (T, F), and unequal length (zero-padded at the
end, as the ``ucr:``/``uea:`` loaders pad). Parametrised over the family registry: a new family
needs only an entry in `SEQUENCE_EXAMPLES`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spaces import load_space
from spaces.families import InvalidArchitecture, build_model, family_trainer, list_families
from spaces.families.rnn import CELLS, READOUTS
from tests.spaces.padding import assert_padding_changes_nothing

PREDICTIVE = [f for f in list_families() if family_trainer(f) is None]
"""Families trained by the task's own trainer (generative ones have theirs and their tests)."""

SHAPES = {"univariate": (24, 1), "multivariate": (20, 6), "unequal": (16, 3)}

SEQUENCE_EXAMPLES: dict[str, dict] = {
    "cnn": {"layers": [{"filters": 4, "kernel": 3, "residual": True}], "head": 8},
    "mlp": {"layers": [{"width": 16, "dropout": 0.1}]},
    "rnn": {
        "cell": "peephole_lstm",
        "bidirectional": True,
        "dropout": 0.1,
        "layers": [{"units": 8, "activation": "tanh"}, {"units": 6, "activation": "relu"}],
        "readout": "attention",
    },
    "cnn1d": {
        "layers": [{"filters": 8, "kernel": 5, "downsample": "maxpool", "batchnorm": True}],
        "readout": "max",
    },
    "tdnn": {
        "layers": [{"channels": 8, "kernel": 3}, {"channels": 8, "kernel": 3}],
        "dilation": "triple",
        "residual": True,
        "dropout": 0.1,
        "readout": "mean",
    },
    "inception": {"depth": 3, "kernels": "4-8", "filters": 4, "bottleneck": 4, "residual_every": 3},
    "resnet1d": {"blocks": [{"filters": 8}], "kernels": "8-5-3"},
    "hybrid": {
        "conv": [{"filters": 8, "kernel": 3, "downsample": "stride"}],
        "cell": "coupled_lstm",
        "layers": [{"units": 8}],
        "readout": "last",
    },
}


def _batch(kind: str, shape: tuple[int, int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, *shape, generator=g)
    if kind == "unequal":  # series of 16, 11, 7 and 3 steps, zero-padded at the end
        for i, length in enumerate([16, 11, 7, 3]):
            x[i, length:] = 0.0
    return x


def test_every_family_has_a_sequence_example() -> None:
    assert set(SEQUENCE_EXAMPLES) == set(PREDICTIVE)


@pytest.mark.parametrize("kind", list(SHAPES))
@pytest.mark.parametrize("family", PREDICTIVE)
def test_family_builds_and_trains_one_step_on_every_task_shape(family: str, kind: str) -> None:
    shape = SHAPES[kind]
    torch.manual_seed(0)
    model = build_model(family, SEQUENCE_EXAMPLES[family], shape, num_outputs=3)
    x, y = _batch(kind, shape), torch.tensor([0, 1, 2, 1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_cell_and_direction(cell: str, bidirectional: bool) -> None:
    arch = {"cell": cell, "bidirectional": bidirectional, "layers": [{"units": 5}]}
    model = build_model("rnn", arch, (7, 2), num_outputs=2)
    assert model.layers[0].out_features == (10 if bidirectional else 5)
    out = model(torch.randn(3, 7, 2))
    assert out.shape == (3, 2)


@pytest.mark.parametrize("cell", ["mgu", "peephole_lstm", "coupled_lstm"])
def test_custom_cells_are_causal(cell: str) -> None:
    """A forward-only custom cell's output at step t does not depend on later steps."""
    model = build_model("rnn", {"cell": cell, "layers": [{"units": 4}]}, (6, 2), 2)
    layer = model.layers[0]
    x = torch.randn(1, 6, 2)
    y = x.clone()
    y[:, 4:] += 1.0
    assert torch.allclose(layer(x)[:, :4], layer(y)[:, :4])
    assert not torch.allclose(layer(x)[:, 4:], layer(y)[:, 4:])


def test_tdnn_is_causal() -> None:
    arch = {"layers": [{"channels": 4, "kernel": 3}] * 3, "dilation": "double"}
    model = build_model("tdnn", arch, (20, 1), 2)
    x = torch.randn(1, 20, 1)
    y = x.clone()
    y[:, 15:] = 5.0
    body = model.body
    assert torch.allclose(body(x)[:, :15], body(y)[:, :15])


def test_readouts_and_invalid_choices() -> None:
    assert {"last", "mean", "attention"} <= set(READOUTS)
    with pytest.raises(InvalidArchitecture, match="readout"):
        build_model("rnn", {"layers": [{"units": 4}], "readout": "sum"}, (5, 2), 2)
    with pytest.raises(InvalidArchitecture, match="conv.0.downsample"):
        build_model(
            "hybrid",
            {"conv": [{"filters": 4, "downsample": "stride"}], "layers": [{"units": 4}]},
            (1, 2),
            2,
        )
    with pytest.raises(InvalidArchitecture, match="dilation"):
        build_model("tdnn", {"layers": [{"channels": 4}], "dilation": "quad"}, (5, 2), 2)


@pytest.mark.parametrize(
    "space", ["rnn", "tdnn", "cnn1d", "hybrid", "rnn-evolved", "inception", "resnet1d"]
)
@pytest.mark.parametrize("kind", list(SHAPES))
def test_builtin_sequence_spaces_build_on_every_task_shape(space: str, kind: str) -> None:
    """Sampled architectures of each sequence space build and run (some spaces always do)."""
    loaded = load_space(space)
    rng = np.random.default_rng(0)
    built = 0
    for _ in range(4):
        arch = loaded.decode(loaded.sample(rng))
        try:
            model = build_model(loaded.family, arch, SHAPES[kind], num_outputs=3)
        except InvalidArchitecture:
            # e.g. too much downsampling for short series; these spaces never downsample
            assert space not in ("rnn-evolved", "inception", "resnet1d"), arch
            continue
        model.eval()
        with torch.no_grad():
            assert model(_batch(kind, SHAPES[kind])).shape == (4, 3)
        built += 1
    assert built >= 1


@pytest.mark.parametrize("family", ["rnn", "cnn1d", "tdnn", "hybrid"])
@pytest.mark.parametrize("readout", ["last", "mean", "max", "attention"])
def test_padded_series_score_as_they_would_alone(family: str, readout: str) -> None:
    """Given the true lengths, padding changes nothing: masked pooling, the last valid step,
    per-series reversal for the backward direction, padding re-zeroed between conv layers."""
    arch = {**SEQUENCE_EXAMPLES[family], "readout": readout}
    if family == "rnn":
        arch["layers"] = [{"units": 8}]  # keep it quick
    if family == "cnn1d":
        arch["layers"] = [
            {"filters": 8, "kernel": 3, "downsample": "stride", "batchnorm": True},
            {"filters": 8, "kernel": 5, "downsample": "maxpool"},
            {"filters": 8, "kernel": 3},
        ]
    if family == "hybrid":
        arch["bidirectional"] = True
    if readout == "max" and family in ("rnn", "hybrid"):
        pytest.skip("recurrent families offer last, mean and attention")
    torch.manual_seed(0)
    model = build_model(family, arch, SHAPES["unequal"], 3).eval()
    x = _batch("unequal", SHAPES["unequal"])
    assert_padding_changes_nothing(model, x, torch.tensor([16, 11, 7, 4]))
