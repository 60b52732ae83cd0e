"""Confirmation runs through a real search: the architectures best on their first training are
trained again, the one best on average wins, and the kept model is their trainings' ensemble
(the winner's alone with ``keep="best"``, every confirmed architecture's with ``"confirmed"``)."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient

from search import SearchConfig, leaderboard, load_best, run_search
from search.model_files import load_model_dir
from trainers import load_task

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("keep", ["confirmed", "best"])
def test_confirmation_picks_the_architecture_best_on_average(tmp_path, keep):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = SearchConfig(
        task="digits",
        space="mlp",
        controller="random",
        budget=4,
        epochs=1,
        concurrency=2,
        seed=5,
        confirm=2,
        confirm_runs=2,
        keep=keep,
        name="e2e-confirm",
        tracking_uri=uri,
        storage=str(tmp_path / "ray"),
        quiet=True,
    )
    result = run_search(config)
    client = MlflowClient(uri)
    runs = client.search_runs(
        [result.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    assert len(runs) == 8 and not result.interrupted
    by_architecture: dict[str, list] = {}
    for run in runs:
        by_architecture.setdefault(run.data.tags["rlnas.architecture"], []).append(run)
    confirmed = {
        arch: trainings
        for arch, trainings in by_architecture.items()
        if any(r.data.tags.get("rlnas.confirmation") == "true" for r in trainings)
    }
    # the two best first trainings were each trained twice more
    first = sorted(
        (r for r in runs if "rlnas.confirmation" not in r.data.tags),
        key=lambda r: r.data.metrics["reward"],
        reverse=True,
    )
    assert set(confirmed) == {r.data.tags["rlnas.architecture"] for r in first[:2]}
    assert all(len(trainings) == 3 for trainings in confirmed.values())

    def mean(trainings):
        return sum(r.data.metrics["reward"] for r in trainings) / len(trainings)

    winner = max(confirmed.values(), key=mean)
    best = max(winner, key=lambda r: r.data.metrics["reward"])
    assert result.best_run_id == best.info.run_id
    board = leaderboard("e2e-confirm", tracking_uri=uri, top=10)
    assert list(board["run_id"]) == list(result.leaderboard["run_id"])
    assert board.iloc[0]["mean_reward"] == pytest.approx(mean(winner))

    # the kept model: the winner's three trainings (then the other confirmed architecture's
    # three with keep="confirmed") as one ensemble, registered from the parent run
    kept = 6 if keep == "confirmed" else 3
    version = client.get_model_version_by_alias("e2e-confirm", "best")
    assert version.run_id == result.parent_run_id and version.tags["trainings"] == str(kept)
    assert result.kept["trainings"] == kept and result.kept["networks"] == kept
    model = load_best("e2e-confirm", tracking_uri=uri)
    task = load_task("digits", seed=5)
    pyfunc = mlflow.pyfunc.load_model(version.source)  # an MLflow model of the same ensemble
    with torch.no_grad():
        probabilities = model(task.x_test).softmax(-1).numpy()
    assert np.allclose(pyfunc.predict({"x": task.x_test.numpy()}), probabilities, atol=1e-6)
    (other,) = [t for t in confirmed.values() if t is not winner]
    with torch.no_grad():
        outputs = [m(task.x_test) for m in model.members]
        own = [training_model(uri, r)(task.x_test) for r in winner]
        others = [training_model(uri, r)(task.x_test) for r in other]
        accuracy = (model(task.x_test).argmax(1) == task.y_test).float().mean().item()
        probabilities = torch.stack([o.softmax(-1) for o in own]).mean(0)
        alone = (probabilities.argmax(1) == task.y_test).float().mean().item()
    assert all(any(torch.equal(o, p) for p in outputs[:3]) for o in own)
    assert all(any(torch.equal(o, p) for p in outputs[3:]) for o in others) == (kept == 6)
    assert result.kept["metrics"]["test_accuracy"] == pytest.approx(accuracy)
    parent = client.get_run(result.parent_run_id).data
    assert parent.metrics["best_test_accuracy"] == pytest.approx(accuracy)
    assert parent.tags["rlnas.best_trainings"] == str(kept)
    if keep == "confirmed":  # and how the winner's trainings did without the others
        assert result.kept["best_architecture_metrics"]["test_accuracy"] == pytest.approx(alone)
        assert parent.metrics["best_architecture_test_accuracy"] == pytest.approx(alone)
    else:
        assert accuracy == pytest.approx(alone)


def training_model(uri, run):
    """One child's own model, from its run's ``model/``."""
    path = download_artifacts(artifact_uri=f"{run.info.artifact_uri}/model", tracking_uri=uri)
    return load_model_dir(path)
