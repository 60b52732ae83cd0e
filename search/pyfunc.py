"""A kept model as an MLflow model: a models-from-code pyfunc that runs no pickled code.

The MLflow model holds the model directory (`search.model_files`) as its artifact
``artifacts/model/`` and `CODE_FILE`, whose `KeptModel` rebuilds the network from
``architecture.json`` and reads the weights with ``torch.load(weights_only=True)``. Its
signature and input example follow `search.model_io`; ``model_config["output"]`` says what
a prediction is. Loading and serving need rlnas installed (``--env-manager local``).
"""

from __future__ import annotations

import tempfile
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model, ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import Schema, TensorSpec

from search.mlflow_client import quiet_downloads
from search.model_files import load_model_dir, read_spec
from search.model_io import ModelIO, model_io

__all__ = [
    "CODE_FILE",
    "MODEL_ARTIFACT",
    "KeptModel",
    "log_pyfunc",
    "model_dir_in",
    "save_pyfunc",
    "signature",
]

CODE_FILE = Path(__file__).with_name("pyfunc_code.py")
"""The models-from-code file: it sets a `KeptModel` as the MLflow model."""
MODEL_ARTIFACT = "model"
"""The model directory's name among the MLflow model's artifacts."""


# MLflow warns (its own filter: once) that predict has no type hints it could check: ours
# takes a dict of arrays, which its hints cannot express. Recorded, the warning is dropped.
with warnings.catch_warnings(record=True):

    class KeptModel(PythonModel):
        """Predicts as `search.model_io` says, from the model directory among the artifacts."""

        def load_context(self, context) -> None:
            path = context.artifacts[MODEL_ARTIFACT]
            self.model = load_model_dir(path)
            spec = read_spec(path)
            output = (context.model_config or {})["output"]
            self.io = model_io(self.model, spec.input_shape, spec.num_outputs, output)

        def predict(self, context, model_input, params: dict[str, Any] | None = None) -> np.ndarray:
            return self.io.predict(self.model, model_input)


def signature(io: ModelIO) -> ModelSignature:
    """The MLflow signature of named tensors `io` describes."""
    inputs = Schema([TensorSpec(np.dtype(i.dtype), i.shape, i.name) for i in io.inputs])
    outputs = Schema([TensorSpec(np.dtype("float32"), io.output_shape)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _requirements() -> list[str]:
    try:
        rlnas = f"rlnas=={version('rlnas')}"
    except PackageNotFoundError:
        rlnas = "rlnas"
    return [rlnas, f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]


def save_pyfunc(
    model_dir: str | Path, dest: str | Path, output: str, mlflow_model: Model | None = None
) -> Path:
    """Write the MLflow model of model directory `model_dir` predicting `output` (one of
    `search.model_io.OUTPUTS`) to `dest`; return its path."""
    spec = read_spec(model_dir)
    io = model_io(load_model_dir(model_dir), spec.input_shape, spec.num_outputs, output)
    mlflow.pyfunc.save_model(
        path=str(dest),
        python_model=str(CODE_FILE),
        artifacts={MODEL_ARTIFACT: str(model_dir)},
        model_config={"output": output},
        signature=signature(io),
        input_example=io.example(),
        pip_requirements=_requirements(),
        mlflow_model=mlflow_model,
    )
    return Path(dest)


def log_pyfunc(
    client, experiment_id: str, run_id: str, name: str, model_dir: str | Path, output: str
) -> tuple[str, str]:
    """Log the MLflow model of `model_dir` as logged model `name` of run `run_id` (`client`: an
    `MlflowClient` or `search.mlflow_client.TrackingClient`); return where its files are (the
    source of a registered version) and its id.

    `name` must not be the name of one of the run's artifacts: MLflow lists a run's artifact
    ``<name>/...`` together with the run's logged model of that name, which it looks up in the
    default tracking store, not this one."""
    quiet_downloads()
    logged = client.create_logged_model(
        experiment_id, name=name, source_run_id=run_id, model_type="rlnas"
    )
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        with tempfile.TemporaryDirectory() as tmp:
            meta = Model(
                artifact_path=logged.artifact_location,
                run_id=run_id,
                model_uuid=logged.model_id,
                model_id=logged.model_id,
            )
            path = save_pyfunc(model_dir, Path(tmp, "model"), output, meta)
            client.log_model_artifacts(logged.model_id, str(path))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return logged.artifact_location, logged.model_id


def model_dir_in(path: str | Path) -> Path:
    """The model directory in a downloaded registered model: the MLflow model's artifact, or
    `path` itself (a version registered before MLflow models were)."""
    path = Path(path)
    if not (path / "MLmodel").exists():
        return path
    flavor = Model.load(str(path / "MLmodel")).flavors["python_function"]
    return path / flavor["artifacts"][MODEL_ARTIFACT]["path"]
