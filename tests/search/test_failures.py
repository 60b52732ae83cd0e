"""Failing children through the real CLI, real Ray and real MLflow: a run of failures stops
the search with one line and it resumes once the cause is fixed; a worker that dies is retried
once; a child that hangs is ended by the child timeout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.search.toy_search import cli, client, runs_of, setup_dir

pytestmark = pytest.mark.slow


def test_failures_stop_the_search_with_one_line_and_it_resumes_after_the_fix(tmp_path):
    cwd = setup_dir(tmp_path)
    args = ("search", "--objective", "toyobj:no_reward", "--space", "space.yaml")
    args += ("--controller", "random", "--budget", "8", "--concurrency", "1", "--name", "toy")
    failed = cli(cwd, *args, "--max-failures", "3")
    assert failed.returncode == 1
    output = failed.stdout + failed.stderr
    assert "Traceback" not in output
    stop = [line for line in failed.stderr.splitlines() if "search stopped" in line]
    assert len(stop) == 1 and "3 children failed in a row" in stop[0]
    assert "without 'reward'" in stop[0] and "rlnas resume toy" in stop[0]
    runs = runs_of(cwd, "toy")
    children = [r for r in runs if r.data.tags.get("rlnas.role") == "child"]
    assert len(children) == 3 and all(r.info.status == "FAILED" for r in children)
    assert all("ObjectiveError" in r.data.tags["rlnas.failure"] for r in children)
    artifact = client(cwd).download_artifacts(children[0].info.run_id, "error.txt", str(tmp_path))
    assert "Traceback" in Path(artifact).read_text()
    [parent] = [r for r in runs if r.data.tags.get("rlnas.role") == "search"]
    assert parent.info.status == "FAILED"

    # the fix: the objective returns its reward now
    fixed = (cwd / "toyobj.py").read_text().replace('{"accuracy": 0.5}', '{"reward": 0.5}')
    (cwd / "toyobj.py").write_text(fixed)
    # another machine that shares only the tracking store: the state's copy in the parent run
    shutil.rmtree(cwd / "runs" / "searches")
    resumed = cli(cwd, "resume", "toy")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    finished = [
        r
        for r in runs_of(cwd, "toy")
        if r.data.tags.get("rlnas.role") == "child" and r.info.status == "FINISHED"
    ]
    assert len(finished) == 5  # the budget counts the 3 failed trainings too


def test_a_dead_worker_is_retried_once_and_a_hung_child_times_out(tmp_path):
    cwd = setup_dir(tmp_path)
    dies = cli(
        cwd,
        *("search", "--objective", "toyobj:dies_once", "--space", "space.yaml"),
        *("--controller", "random", "--budget", "2", "--concurrency", "1", "--name", "dies"),
    )
    assert dies.returncode == 0, dies.stderr[-3000:]
    assert "training it again" in dies.stdout
    children = [r for r in runs_of(cwd, "dies") if r.data.tags.get("rlnas.role") == "child"]
    statuses = sorted((r.info.run_name, r.data.tags["rlnas.status"]) for r in children)
    assert statuses == [
        ("child-001", "finished"),
        ("child-001", "retried"),
        ("child-002", "finished"),
    ]

    hung = cli(
        cwd,
        *("search", "--objective", "toyobj:hangs", "--space", "space.yaml", "--name", "hung"),
        *("--controller", "random", "--budget", "4", "--concurrency", "1"),
        *("--child-timeout", "2", "--max-failures", "2"),
    )
    assert hung.returncode == 1
    assert "exceeded the child timeout of 2 s" in hung.stderr
    children = [r for r in runs_of(cwd, "hung") if r.data.tags.get("rlnas.role") == "child"]
    assert len(children) == 2
    assert all(r.data.tags["rlnas.failure"].startswith("exceeded the child") for r in children)
