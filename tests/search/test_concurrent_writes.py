"""Eight children finishing at the same moment, recorded in the default SQLite store: none
lost, none twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search import leaderboard

ROOT = Path(__file__).resolve().parents[2]
CHILDREN = 8
SPACE = """\
family: custom
decisions:
""" + "".join(f"  - {{name: {d}, choices: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}}\n" for d in "abcd")
# Each child checks in, waits for all of them, then all return at the same wall-clock time:
# two seconds after the last check-in (the same files give every child the same deadline).
OBJECTIVE = """\
import json, time, uuid
from pathlib import Path

ROOM = Path({room!r})


def score(architecture):
    (ROOM / uuid.uuid4().hex).write_text(json.dumps(architecture))
    give_up = time.time() + 120
    while len(list(ROOM.iterdir())) < {children} and time.time() < give_up:
        time.sleep(0.05)
    deadline = max(p.stat().st_mtime for p in ROOM.iterdir()) + 2.0
    time.sleep(max(0.0, deadline - time.time()))
    return {{"reward": sum(architecture.values()) / 36, "finished_at": time.time()}}
"""


@pytest.mark.slow
def test_children_finishing_together_are_each_recorded_once(tmp_path):
    room = tmp_path / "room"
    room.mkdir()
    (tmp_path / "together.py").write_text(OBJECTIVE.format(room=str(room), children=CHILDREN))
    (tmp_path / "wide.yaml").write_text(SPACE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store: runs/mlflow.db
    result = subprocess.run(
        [sys.executable, "-m", "search.cli", "search", "--objective", "together:score"]
        + ["--space", "wide.yaml", "--controller", "random", "--budget", str(CHILDREN)]
        + ["--concurrency", str(CHILDREN), "--cpus-per-trial", "0.25", "--seed", "0"]
        + ["--name", "together"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    trained = [json.loads(p.read_text()) for p in room.iterdir()]
    assert len(trained) == CHILDREN
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("together")
    runs = client.search_runs([experiment.experiment_id], "")
    children = [r for r in runs if r.data.tags.get("rlnas.role") == "child"]
    (parent,) = [r for r in runs if r.data.tags.get("rlnas.role") == "search"]
    assert len(children) == CHILDREN
    assert len({c.info.run_name for c in children}) == CHILDREN
    finished_at = [c.data.metrics["finished_at"] for c in children]
    assert max(finished_at) - min(finished_at) < 1.0  # they did finish together

    recorded = []
    for child in children:
        assert child.info.status == "FINISHED"
        architecture = json.loads(child.data.tags["rlnas.architecture"])
        recorded.append(architecture)
        assert child.data.params == {
            **{k: str(v) for k, v in architecture.items()},
            "train_seed": child.data.params["train_seed"],
        }
        for key in ("reward", "finished_at"):
            assert len(client.get_metric_history(child.info.run_id, key)) == 1, key
        assert child.data.metrics["reward"] == pytest.approx(sum(architecture.values()) / 36)
    key = json.dumps
    assert Counter(map(key, recorded)) == Counter(map(key, trained))

    progress = client.get_metric_history(parent.info.run_id, "children_finished")
    assert sorted((m.step, m.value) for m in progress) == [(n, n) for n in range(1, 9)]
    assert parent.info.status == "FINISHED"
    assert len(leaderboard("together", top=100, tracking_uri=uri)) == CHILDREN
