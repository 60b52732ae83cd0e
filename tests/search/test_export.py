"""`rlnas export`: ONNX and TorchScript files compute the model's outputs, for every family."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

from search.cli import main
from search.export import FORMATS, ExportError, export_model_dir
from search.model_files import load_model_dir
from tests.search.kept_models import CASES, batch, register, write_model_dir

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {name: write_model_dir(case, root / name) for name, case in CASES.items()}


def outputs(model_dir, name) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The test split's inputs (lengths included) and what the PyTorch model gives for them."""
    model = load_model_dir(model_dir)
    inputs = batch(name, model)
    with torch.no_grad():
        return inputs, model(*(torch.from_numpy(v) for v in inputs.values())).numpy()


@pytest.mark.parametrize("name", sorted(CASES))
def test_torchscript_gives_the_models_outputs(model_dirs, tmp_path, name):
    path = export_model_dir(model_dirs[name], "torchscript", tmp_path / "model.pt")
    inputs, expected = outputs(model_dirs[name], name)
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        got = loaded(*(torch.from_numpy(v) for v in inputs.values())).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_gives_the_models_outputs(model_dirs, tmp_path, name):
    path = export_model_dir(model_dirs[name], "onnx", tmp_path / "model.onnx")
    inputs, expected = outputs(model_dirs[name], name)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(inputs)
    (got,) = session.run(None, inputs)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)


def test_state_dict_writes_the_model_directory(model_dirs, tmp_path):
    path = export_model_dir(model_dirs["confirmed"], "state-dict", tmp_path / "kept")
    inputs, expected = outputs(model_dirs["confirmed"], "confirmed")
    assert {p.name for p in path.iterdir()} >= {"architecture.json", "members.json"}
    with torch.no_grad():
        got = load_model_dir(path)(*(torch.from_numpy(v) for v in inputs.values())).numpy()
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ExportError, match="exists"):
        export_model_dir(model_dirs["confirmed"], "state-dict", tmp_path / "kept")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    register(uri, "mlp", root / "dirs")
    return uri


def test_cli_exports_the_best_version_or_another(store, tmp_path, capsys):
    for fmt in FORMATS:
        out = tmp_path / f"model.{fmt}"
        assert (
            main(["export", "mlp", "--format", fmt, "--out", str(out), "--tracking-uri", store])
            == 0
        )
        assert out.exists()
        assert capsys.readouterr().out == f"rlnas export: mlp (best) written as {fmt} to {out}\n"
    out = tmp_path / "v1.pt"
    argv = ["export", "mlp", "--format", "torchscript", "--out", str(out), "--version", "1"]
    assert main([*argv, "--tracking-uri", store]) == 0
    assert "(version 1)" in capsys.readouterr().out


def test_cli_says_in_one_line_why_it_cannot_export(store, tmp_path, capsys, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("an operator the tracer does not know\nmore detail")

    monkeypatch.setattr(torch.jit, "trace", fails)
    out = tmp_path / "model.pt"
    argv = ["export", "mlp", "--format", "torchscript", "--out", str(out)]
    assert main([*argv, "--tracking-uri", store]) == 2
    err = capsys.readouterr().err
    assert err == (
        "rlnas export: cannot trace the model for TorchScript: an operator the tracer does not "
        "know\n"
    )
    assert not out.exists()
    assert main([*argv, "--version", "7", "--tracking-uri", store]) == 2
    assert "no model registered as mlp version 7" in capsys.readouterr().err
