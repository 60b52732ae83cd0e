"""Several trainings combined into the one model a search keeps."""

from __future__ import annotations

import json

import pytest
import torch

from search.combined import combine_model_dirs, evaluate_on_test
from search.model_files import ModelSpec, load_model_dir, save_model_dir
from spaces.ensemble import Ensemble
from spaces.families import build_model
from trainers import get_trainer, load_task

ARCHITECTURE = {"layers": [{"filters": 4, "kernel": 3, "downsample": "none"}], "readout": "max"}
SHAPE = (12, 1)


def _network(seed: int, architecture=ARCHITECTURE, outputs: int = 3):
    torch.manual_seed(seed)
    return build_model("cnn1d", architecture, SHAPE, outputs).eval()


def _save(path, model, architecture=ARCHITECTURE, outputs: int = 3, combine=""):
    members = len(model.members) if isinstance(model, Ensemble) else 0
    spec = ModelSpec("cnn1d", SHAPE, outputs, "t", "cnn1d", ensemble=members, combine=combine)
    return save_model_dir(path, architecture, spec, model.state_dict(), "space: text\n")


def test_trainings_become_one_ensemble_of_all_their_networks(tmp_path):
    pair = Ensemble([_network(1), _network(2)], "probabilities")
    single = _network(3)
    sources = [_save(tmp_path / "a", pair, combine="probabilities"), _save(tmp_path / "b", single)]
    path, combined = combine_model_dirs(sources, tmp_path / "kept", "probabilities")
    x = torch.randn(5, *SHAPE)
    with torch.no_grad():
        expected = torch.stack([m(x).softmax(-1) for m in [*pair.members, single]]).mean(0)
        assert torch.allclose(combined(x).exp(), expected, atol=1e-6)
        reloaded = load_model_dir(path)  # an ordinary model directory
        assert len(reloaded.members) == 3
        assert torch.allclose(reloaded(x), combined(x))
    assert (path / "space.yaml").read_text() == "space: text\n"


def test_forecasts_average_their_outputs(tmp_path):
    sources = [_save(tmp_path / str(s), _network(s, outputs=2), outputs=2) for s in (1, 2)]
    _, combined = combine_model_dirs(sources, tmp_path / "kept", "mean")
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        expected = (_network(1, outputs=2)(x) + _network(2, outputs=2)(x)) / 2
        assert torch.allclose(combined(x), expected, atol=1e-6)


def test_different_architectures_join_one_ensemble_that_reloads(tmp_path):
    other = {**ARCHITECTURE, "readout": "mean", "layers": [{"filters": 6, "kernel": 5}]}
    pair = Ensemble([_network(1), _network(2)], "probabilities")
    sources = [
        _save(tmp_path / "a", pair, combine="probabilities"),
        _save(tmp_path / "b", _network(3, other), other),
        _save(tmp_path / "c", _network(4)),
    ]
    path, combined = combine_model_dirs(sources, tmp_path / "kept", "probabilities")
    groups = json.loads((path / "members.json").read_text())
    assert [g["members"] for g in groups] == [2, 1, 1]
    assert groups[1]["architecture"] == other
    assert json.loads((path / "architecture.json").read_text()) == ARCHITECTURE
    x = torch.randn(5, *SHAPE)
    with torch.no_grad():
        networks = [*pair.members, _network(3, other), _network(4)]
        expected = torch.stack([m(x).softmax(-1) for m in networks]).mean(0)
        assert torch.allclose(combined(x).exp(), expected, atol=1e-6)
        assert torch.allclose(load_model_dir(path)(x), combined(x))


def test_models_of_other_shapes_are_refused(tmp_path):
    sources = [
        _save(tmp_path / "a", _network(1)),
        _save(tmp_path / "b", _network(2, outputs=2), outputs=2),
    ]
    with pytest.raises(ValueError, match="2 outputs cannot join"):
        combine_model_dirs(sources, tmp_path / "kept", "probabilities")
    with pytest.raises(ValueError, match="nothing to combine"):
        combine_model_dirs([], tmp_path / "kept", "probabilities")
    assert not (tmp_path / "kept").exists()


def test_evaluation_is_the_trainers_on_the_test_split():
    task = load_task("ucr:ItalyPowerDemand", seed=0)
    torch.manual_seed(0)
    model = build_model("cnn1d", ARCHITECTURE, task.input_shape, task.num_outputs)
    metrics = evaluate_on_test(get_trainer("classification"), model, task)
    with torch.no_grad():
        accuracy = (model(task.x_test).argmax(1) == task.y_test).float().mean().item()
    assert set(metrics) == {"test_accuracy", "test_macro_f1", "test_uar"}
    assert metrics["test_accuracy"] == pytest.approx(accuracy)
