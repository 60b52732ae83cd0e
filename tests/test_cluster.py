"""A search joins an existing Ray cluster (`ray start --head` on loopback) through --address."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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
    """A head node of its own: `ray start --block` in the foreground, its temp dir private (so
    no other `ray.init()` on the machine finds it), stopped with Ctrl-C, which ends only the
    processes it started (`ray stop` would end every Ray process on the machine)."""
    ray = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="rlnas-ray-")  # short: Ray's socket paths have a limit
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [
            ray,
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (Path(temp_dir) / "ray_current_cluster").exists():
            assert head.poll() is None, head.stdout.read()[-2000:]
            assert time.monotonic() < deadline, "ray start --head did not come up in 120 s"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGINT)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


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
