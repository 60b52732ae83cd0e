"""Generative searches through real Ray and real MLflow: samples, failures, load_best."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search import SearchConfig, leaderboard, run_search
from search.formatting import format_leaderboard
from spaces.families.vae import DEFAULT_IMAGE_VAE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vae_search(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    config = SearchConfig(
        task="digits",
        space="vae",
        controller="random",
        budget=3,
        epochs=2,
        concurrency=2,
        seed=1,
        name="e2e-vae",
        include=[DEFAULT_IMAGE_VAE],
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        storage=str(root / "ray"),
        quiet=True,
    )
    return config, run_search(config), root


def test_children_record_sample_grids_and_the_quality_measure(vae_search):
    config, result, _ = vae_search
    client = MlflowClient(config.tracking_uri)
    children = client.search_runs(
        [result.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    assert len(children) == 3
    included = [c for c in children if c.data.tags.get("rlnas.included") == "true"]
    assert len(included) == 1
    assert json.loads(included[0].data.tags["rlnas.architecture"]) == DEFAULT_IMAGE_VAE
    for child in children:
        metrics = child.data.metrics
        assert child.data.tags["rlnas.test_metric"] == "test_bpd"
        if child.data.tags.get("rlnas.failure"):
            assert metrics["reward"] == 0.0
            continue
        assert 0.0 < metrics["reward"] <= 1.0
        for name in ("val_bpd", "test_bpd", "val_fd", "test_fd", "val_coverage"):
            assert metrics[name] == metrics[name], name  # present and not NaN
        assert "val_accuracy" not in metrics  # nothing is classified
        samples = [a.path for a in client.list_artifacts(child.info.run_id, "samples")]
        assert samples == ["samples/epoch-001.png", "samples/epoch-002.png"]
        assert {a.path for a in client.list_artifacts(child.info.run_id, "model")} >= {
            "model/architecture.json",
            "model/state_dict.pt",
        }


def test_the_parent_shows_the_best_childs_samples(vae_search):
    config, result, root = vae_search
    client = MlflowClient(config.tracking_uri)
    parent = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"rewards.png", "pareto.png", "learning_curves.png", "best_samples.png"} <= parent
    best = client.get_run(result.best_run_id)
    kept = f"samples/epoch-{int(best.data.metrics['best_epoch']):03d}.png"
    grid = Path(client.download_artifacts(result.best_run_id, kept, str(root / "kept")))
    shown = Path(client.download_artifacts(result.parent_run_id, "best_samples.png", str(root)))
    assert shown.read_bytes() == grid.read_bytes()


def test_leaderboard_shows_the_generative_test_metric(vae_search):
    config, result, _ = vae_search
    board = leaderboard("e2e-vae", tracking_uri=config.tracking_uri)
    assert set(board["test_metric"]) == {"test_bpd"}
    assert board["included"].sum() == 1
    text = format_leaderboard(board)
    assert text.splitlines()[0].split()[3] == "bpd"
    assert "*" in text  # the included default is marked


def test_load_best_returns_a_model_to_sample_from_in_a_fresh_process(vae_search):
    config, result, root = vae_search
    code = (
        "import json\n"
        "from search import load_best\n"
        f"model = load_best('e2e-vae', tracking_uri={config.tracking_uri!r})\n"
        "x = model.sample(5)\n"
        "print(json.dumps({'shape': list(x.shape), 'lo': x.min().item(), 'hi': x.max().item()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["shape"] == [5, 1, 8, 8]
    assert 0.0 <= report["lo"] <= report["hi"] <= 1.0  # Bernoulli means, like the task's images


def test_an_included_architecture_outside_the_space_is_refused_before_anything_runs(tmp_path):
    from search.config import ConfigError

    config = SearchConfig(
        task="digits",
        space="vae",
        budget=2,
        include=[{**DEFAULT_IMAGE_VAE, "latent": 3}],
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        storage=str(tmp_path / "ray"),
        quiet=True,
    )
    with pytest.raises(ConfigError, match="include: architecture 1 is not in space 'vae'.*latent"):
        run_search(config)
    assert not (tmp_path / "mlflow.db").exists()
