"""A cluster that goes away under a search (`search.cluster.ClusterWatch`): Tune's loop raises
`ClusterLost`, or the watch ends a loop stuck in a request to the gone cluster; through the CLI
the search stops in one line, its records ended, and resumes on a Ray of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from tests.search.ray_heads import driver_env, wait_for
from tests.search.toy_search import cli, command, evaluated, runs_of, setup_dir, trained
from tests.search.toy_search import env as toy_env

TUNED = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from ray import tune
    from search.cluster import ClusterLost, ClusterWatch, connect

    address, where, stuck = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "stuck"
    connect(address)

    def child(config):
        (where / f"child-{config['i']}").touch()
        time.sleep(600)

    class Stuck(tune.Callback):
        \"\"\"Tune's loop waits for good once both children run (as it does in a request to
        a gone cluster).\"\"\"
        def on_step_begin(self, iteration, trials, **info):
            if stuck and len(list(where.glob("child-*"))) == 2:
                (where / "stuck").touch()
                time.sleep(600)

    def lost(exc):
        print(f"ClusterLost (stuck): {exc}", flush=True)
        os._exit(3)

    tuner = tune.Tuner(
        child,
        param_space={"i": tune.grid_search([0, 1])},
        run_config=tune.RunConfig(
            storage_path=str(where / "tune"),
            verbose=0,
            callbacks=[ClusterWatch("demo", on_stuck=lost), Stuck()],
        ),
    )
    try:
        tuner.fit()
    except ClusterLost as exc:
        print(f"ClusterLost: {exc}", flush=True)
        sys.exit(3)
    print("fit returned", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["free", "stuck"])
def test_a_search_whose_cluster_goes_away_stops_with_cluster_lost(head, tmp_path, loop):
    """Stopping the head fails the children; without `ClusterWatch`, Tune either ends as if
    they had failed or waits until Ray ends the driver a minute later. Tune's loop either
    raises `ClusterLost` itself, or is stuck (in a request to the gone cluster) and the watch
    ends the process."""
    out = tmp_path / "driver.out"
    with out.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", TUNED, head.address, str(tmp_path), loop],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=driver_env(),
            cwd=tmp_path,
        )
    try:
        running = wait_for(lambda: len(list(tmp_path.glob("child-*"))) == 2, timeout=120)
        assert running, out.read_text()[-3000:]
        if loop == "stuck":
            assert wait_for((tmp_path / "stuck").exists, timeout=60), out.read_text()[-3000:]
        head.stop()
        stopped = time.monotonic()
        process.wait(timeout=60)
        assert time.monotonic() - stopped < 60
        lines = [line for line in out.read_text().splitlines() if line.startswith("ClusterLost")]
        assert process.returncode == 3, out.read_text()[-3000:]
        assert len(lines) == 1, out.read_text()[-3000:]
        assert lines[0].split(": ", 1)[1] == (
            f"the Ray cluster at {head.address} is gone; the search stopped: "
            "resume it with `rlnas resume demo` once the cluster is back, or on a Ray of its own "
            "with `rlnas resume demo --address local`"
        )
        if loop == "stuck":
            assert lines[0].startswith("ClusterLost (stuck)")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_search_on_a_cluster_that_goes_away_stops_and_resumes_on_a_ray_of_its_own(head, tmp_path):
    """A search on a cluster stops in one line when the cluster goes away mid-children (its
    records ended, not left running), and resumes on a Ray of its own to the budget, each
    child recorded once."""
    cwd = setup_dir(tmp_path, sleep=3)
    search = ("--objective", "toyobj:score", "--space", "space.yaml", "--controller", "evolution")
    search += ("--name", "on-cluster", "--seed", "3", "--budget", "6", "--address", head.address)
    environ = toy_env()
    environ.pop("RAY_AUTH_MODE", None)  # the search finds the cluster's token itself
    process = subprocess.Popen(
        command("search", *search),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=environ,
    )
    try:
        # two children finished, two running
        assert wait_for(lambda: len(evaluated(cwd)) >= 4, timeout=180), process.stderr.read()
        head.stop()
        stdout, stderr = process.communicate(timeout=60)  # Ray alone would end it after 60 s
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "2 at a time" in stdout  # the cluster's 2 CPUs
    assert process.returncode == 1, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert " is gone; the search stopped: resume it with `rlnas resume on-cluster` " in last
    assert head.address.rsplit(":", 1)[1] in last  # the cluster's port
    runs = runs_of(cwd, "on-cluster")
    assert not [r for r in runs if r.info.status == "RUNNING"]  # the records were ended
    assert len(trained(cwd, "on-cluster")) == 2

    refused = cli(cwd, "resume", "on-cluster")  # where it ran: the cluster is still gone
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "nothing listens there" in refused.stderr and "--address local" in refused.stderr
    done = cli(cwd, "resume", "on-cluster", "--address", "local")
    assert done.returncode == 0, done.stderr[-3000:]
    finished = trained(cwd, "on-cluster")
    assert len(finished) == len(set(finished)) == 6
