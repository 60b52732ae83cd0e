"""Sequence tasks through the whole product: rnn-evolved builds for every sequence task, and
a real (tiny) search on a UEA archive logs the new metrics to MLflow and keeps an ensemble."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from search import SearchConfig, load_best, run_search
from spaces.ensemble import Ensemble
from spaces.families import build_model
from trainers import describe_task, list_tasks, load_task

SEQUENCE_TASKS = [n for n in list_tasks() if n.startswith(("ucr:", "uea:", "forecast:"))]
SMALL_EVOLVED = {
    "cell": "lstm",
    "layers": [{"units": 40, "activation": "relu"}, {"units": 0}, {"units": 40}],
}


@pytest.mark.parametrize("name", SEQUENCE_TASKS)
def test_rnn_evolved_builds_for_every_sequence_task(name: str) -> None:
    info = describe_task(name)
    outputs = info.get("horizon") or info["num_classes"]
    model = build_model("rnn", SMALL_EVOLVED, info["input_shape"], outputs)
    with torch.no_grad():
        assert model(torch.zeros(1, *info["input_shape"])).shape == (1, outputs)


@pytest.mark.slow
def test_search_on_a_uea_archive_logs_every_metric(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = SearchConfig(
        task="uea:BasicMotions",
        space="cnn1d",
        controller="random",
        budget=1,
        epochs=2,
        concurrency=1,
        seed=0,
        name="e2e-basicmotions",
        tracking_uri=uri,
        storage=str(tmp_path / "ray"),
        quiet=True,
        reward="val_uar",
        lr_schedule="cosine",
    )
    result = run_search(config)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("e2e-basicmotions")
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    assert len(children) == 1
    for child in children:
        metrics = child.data.metrics
        for key in ("val_uar", "val_macro_f1", "test_accuracy", "test_macro_f1", "test_uar"):
            assert 0.0 <= metrics[key] <= 1.0, key
        history = client.get_metric_history(child.info.run_id, "val_uar")
        assert [m.step for m in history] == [1, 2]
        # cosine over 2 epochs: the full rate, then half of it
        lrs = [m.value for m in client.get_metric_history(child.info.run_id, "lr")]
        assert lrs == pytest.approx([config.lr, config.lr / 2])
        assert metrics["reward"] == pytest.approx(max(m.value for m in history))
    # 40 training series: cross-validated, so the best model is the refit with the fold models
    model = load_best("e2e-basicmotions", tracking_uri=uri)
    assert isinstance(model, Ensemble) and len(model.members) in (5, 6)
    assert not model.training
    task = load_task("uea:BasicMotions", seed=0)
    with torch.no_grad():
        accuracy = (model(task.x_test).argmax(1) == task.y_test).float().mean().item()
    assert accuracy == pytest.approx(result.best["test_accuracy"], abs=1e-6)
    # registered as an MLflow model of the same ensemble: full-length series, their lengths
    source = client.get_model_version_by_alias("e2e-basicmotions", "best").source
    lengths = torch.full((len(task.x_test),), task.input_shape[0])
    predicted = mlflow.pyfunc.load_model(source).predict(
        {"x": task.x_test.numpy(), "lengths": lengths.numpy()}
    )
    with torch.no_grad():
        expected = model(task.x_test, lengths).softmax(-1).numpy()
    assert np.allclose(predicted, expected, atol=1e-6)
