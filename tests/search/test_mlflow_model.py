"""Every kept model registered as an MLflow model: loaded by MLflow, served, as `load_best`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient

from search import load_best
from search.model_files import load_model_dir, read_spec
from search.model_io import ModelIO, model_io, output_of
from search.pyfunc import model_dir_in
from tests.search.kept_models import CASES, as_json, batch, register, task

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tracking store where every case of `CASES` is registered under its name."""
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    runs = {name: register(uri, name, root / "dirs") for name in CASES}
    return uri, runs, root


def expected(name: str, uri: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """What `load_best`'s model gives for `inputs`, as the MLflow model should."""
    model = load_best(name, tracking_uri=uri)
    with torch.no_grad():
        out = model(*(torch.from_numpy(v) for v in inputs.values())).float()
    return (out.softmax(-1) if io_of(name, model).output == "probabilities" else out).numpy()


def io_of(name: str, model: torch.nn.Module) -> ModelIO:
    t = task(CASES[name].task)
    return model_io(model, t.input_shape, t.num_outputs, output_of(model, t.kind))


def test_every_version_is_a_logged_mlflow_model(store):
    uri, runs, root = store
    client = MlflowClient(uri)
    for name, run_id in runs.items():
        version = client.get_model_version_by_alias(name, "best")
        experiment = client.get_experiment_by_name(name).experiment_id
        (logged,) = client.search_logged_models([experiment])
        assert logged.status == "READY" and logged.source_run_id == run_id
        assert version.source == logged.artifact_location and version.run_id == run_id
        path = client.download_artifacts(run_id, "model", str(root / "check" / name))
        assert {"architecture.json", "model.json", "state_dict.pt"} <= set(os.listdir(path))
        listed = {Path(f.path).name for f in client.list_artifacts(run_id, "model")}
        assert {"architecture.json", "model.json", "state_dict.pt"} <= listed
    local = root / "one"
    source = client.get_model_version_by_alias("rnn", "best").source
    model_path = download_artifacts(artifact_uri=source, dst_path=str(local), tracking_uri=uri)
    meta = yaml.safe_load(Path(model_path, "MLmodel").read_text())
    flavor = meta["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "python_model" not in flavor and Path(model_path, "pyfunc_code.py").exists()
    assert not [p for p in Path(model_path).rglob("*") if p.suffix in (".pkl", ".pickle")]
    inputs = json.loads(meta["signature"]["inputs"])
    assert [i["name"] for i in inputs] == ["x", "lengths"]
    assert inputs[0]["tensor-spec"]["shape"] == [-1, 29, 12]
    assert os.path.exists(os.path.join(model_path, "input_example.json"))
    assert read_spec(model_dir_in(model_path)).family == "rnn"


@pytest.mark.slow
def test_mlflow_loads_every_model_in_a_fresh_process_as_load_best(store):
    uri, _, root = store
    inputs = {}
    for name in CASES:
        model = load_best(name, tracking_uri=uri)
        inputs[name] = batch(name, model, 40)
        np.savez(root / f"in-{name}.npz", **inputs[name])
    code = (
        "import sys, numpy as np, mlflow\n"
        "for name in sys.argv[2:]:\n"
        "    model = mlflow.pyfunc.load_model(f'models:/{name}@best')\n"
        "    batch = dict(np.load(f'{sys.argv[1]}/in-{name}.npz'))\n"
        "    np.save(f'{sys.argv[1]}/out-{name}.npy', model.predict(batch))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    subprocess.run([sys.executable, "-c", code, str(root), *CASES], check=True, env=env, cwd=root)
    for name in CASES:
        got = np.load(root / f"out-{name}.npy")
        want = expected(name, uri, inputs[name])
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=name)
        if CASES[name].family not in ("gan", "vae") and CASES[name].task != "forecast:MackeyGlass":
            np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5, err_msg=name)


def test_load_best_reads_a_version_registered_before_mlflow_models(store):
    uri, runs, _ = store
    client = MlflowClient(uri)
    run = client.get_run(runs["mlp"])
    version = client.create_model_version("mlp", f"{run.info.artifact_uri}/model", run.info.run_id)
    client.set_registered_model_alias("mlp", "old", version.version)
    old = client.get_model_version_by_alias("mlp", "old")
    path = download_artifacts(artifact_uri=old.source, tracking_uri=uri)
    assert model_dir_in(path) == Path(path)
    x = task("digits").x_test[:5]
    with torch.no_grad():
        assert torch.equal(load_model_dir(path)(x), load_best("mlp", tracking_uri=uri)(x))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["confirmed", "forecast", "vae"])
def test_mlflow_serves_the_model_on_loopback(store, name):
    if shutil.which("mlflow") is None:
        pytest.skip("the mlflow command is not installed")
    uri, _, root = store
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = ["mlflow", "models", "serve", "-m", f"models:/{name}@best"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    model = load_best(name, tracking_uri=uri)
    inputs = batch(name, model, 50)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the model server did not answer in 120 s"
                time.sleep(0.5)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=as_json(inputs).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = np.asarray(json.load(response)["predictions"], dtype=np.float32)
    finally:
        server.terminate()
        server.wait(timeout=30)
    np.testing.assert_allclose(predictions, expected(name, uri, inputs), rtol=0, atol=1e-5)
