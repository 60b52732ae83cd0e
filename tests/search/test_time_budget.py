"""`--time-budget`: a search ends in the wall-clock time it was given, through the real CLI,
Ray and MLflow, and a resume may give it more."""

from __future__ import annotations

import pytest

from tests.search.toy_search import cli, runs_of, setup_dir

pytestmark = pytest.mark.slow

SEARCH = ("--objective", "toyobj:score", "--space", "space.yaml", "--controller", "random")
SEARCH += ("--name", "timed", "--concurrency", "1", "--budget", "12")


def finished_children(cwd) -> int:
    return sum(
        r.data.tags.get("rlnas.role") == "child" and r.info.status == "FINISHED"
        for r in runs_of(cwd, "timed")
    )


def test_a_search_ends_in_its_time_budget_and_a_resume_gives_it_more(tmp_path):
    cwd = setup_dir(tmp_path, sleep=1)
    done = cli(cwd, "search", *SEARCH, "--time-budget", "10")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "12 children or 10s, whichever comes first" in done.stdout
    assert " of 0:10 left" in done.stdout  # the progress lines count down
    first = finished_children(cwd)
    assert 1 <= first <= 9  # each child takes at least its 1 s, the first one more
    [parent] = [r for r in runs_of(cwd, "timed") if r.data.tags.get("rlnas.role") == "search"]
    assert parent.info.status == "FINISHED"

    again = cli(cwd, "resume", "timed")
    assert again.returncode == 2
    assert "or its time budget of 10s; pass a larger --budget or --time-budget" in again.stderr

    # the resume's own start-up counts against the time too: with ample time (ample on a
    # loaded machine as well, and within `cli`'s timeout), the children budget ends it
    more = cli(cwd, "resume", "timed", "--time-budget", "200s")
    assert more.returncode == 0, more.stderr[-3000:]
    assert finished_children(cwd) == 12
