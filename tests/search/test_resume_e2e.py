"""Durable searches through the real CLI, real Ray, real MLflow and real signals: a search
killed (SIGTERM, then SIGKILL) and resumed trains exactly what an uninterrupted one trains,
keeps every finished child and records each once (failing children: `test_failures`)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.search.toy_search import (
    cli,
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
