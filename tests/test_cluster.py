"""A search joins an existing Ray cluster (`ray start --head` on loopback) through --address."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    ray = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run(
        [
            ray,
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


def test_search_runs_on_an_existing_cluster(ray_head, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env["RAY_AUTH_MODE"] = "token"  # `ray start` made the cluster with token authentication
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "search.cli",
            "search",
            "--address",
            ray_head,
            "--space",
            "mlp",
            "--budget",
            "2",
            "--epochs",
            "1",
            "--controller",
            "random",
            "--name",
            "on-cluster",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 at a time" in result.stdout  # the cluster's 2 CPUs
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("on-cluster")
    children = client.search_runs(
        [experiment.experiment_id], "tags.`rlnas.role` = 'child' and attributes.status = 'FINISHED'"
    )
    assert len(children) == 2
    # the cluster outlives the search: a search that joins a cluster must not stop it
    status = subprocess.run(
        [shutil.which("ray") or "ray", "status", f"--address={ray_head}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr[-2000:]
