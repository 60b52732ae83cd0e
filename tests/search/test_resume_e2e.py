"""Durable searches through the real CLI, real Ray, real MLflow and real signals: a search
killed (SIGTERM, then SIGKILL) and resumed trains exactly what an uninterrupted one trains,
keeps every finished child and records each once; failures end children with a reason and a
run of them stops the search, which resumes once the cause is fixed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.search.toy_search import (
    cli,
    client,
    command,
    env,
    evaluated,
    runs_of,
    setup_dir,
    trained,
)

pytestmark = pytest.mark.slow

SEARCH = ("--objective", "toyobj:score", "--space", "space.yaml", "--controller", "evolution")


def search_args(budget: int = 10) -> tuple[str, ...]:
    return ("search", *SEARCH, "--budget", str(budget), "--concurrency", "1", "--seed", "3")


def start_and_kill(cwd: Path, args: tuple[str, ...], after: int, sig: int) -> None:
    """Start the CLI and send `sig` once `after` children have been evaluated."""
    process = subprocess.Popen(
        command(*args), cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 180
    while len(evaluated(cwd)) < after and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.1)
    process.send_signal(sig)
    process.wait(timeout=120)


def test_a_killed_search_resumes_and_trains_what_an_uninterrupted_one_does(tmp_path):
    whole = setup_dir(tmp_path / "whole")
    done = cli(whole, *search_args())
    assert done.returncode == 0, done.stderr[-3000:]
    expected = trained(whole, "score-space")
    assert len(expected) == 10

    cut = setup_dir(tmp_path / "cut")
    start_and_kill(cut, search_args(), after=3, sig=signal.SIGTERM)
    refused = cli(cut, *search_args())
    assert refused.returncode == 2
    assert "unfinished" in refused.stderr and "rlnas resume score-space" in refused.stderr
    changed = cli(cut, "resume", "score-space", "--seed", "4", "--budget", "12")
    assert changed.returncode == 2 and "seed (3 -> 4)" in changed.stderr
    assert "budget" not in changed.stderr.split("changed settings:")[1].split(";")[0]

    process_env = cut / "evaluated.jsonl"
    before = len(evaluated(cut))
    start_and_kill(cut, ("resume", "score-space"), after=before + 3, sig=signal.SIGKILL)
    resumed = cli(cut, *search_args(), "--resume")  # the same as `rlnas resume score-space`
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Traceback" not in resumed.stdout + resumed.stderr

    assert trained(cut, "score-space") == expected  # the same children, each recorded once
    # finished children never trained again; the ones cut off did (at most one per kill)
    assert len(evaluated(cut)) <= 10 + 2 and process_env.exists()
    runs = runs_of(cut, "score-space")
    parents = [r for r in runs if r.data.tags.get("rlnas.role") == "search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert not [r for r in runs if r.info.status == "RUNNING"]
    for run in runs:
        if run.info.status == "KILLED":
            assert run.data.tags["rlnas.status"] == "killed"
    done_again = cli(cut, "resume", "score-space")
    assert done_again.returncode == 2 and "pass a larger --budget" in done_again.stderr


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
