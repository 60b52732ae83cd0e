"""A toy search to drive through the real CLI: a 20-architecture custom space and an objective
module (no training) that records what it evaluates; its MLflow records read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
SPACE = """\
family: custom
decisions:
  - {name: width, choices: [8, 16, 32, 64, 128]}
  - {name: act, choices: [relu, tanh, gelu, elu]}
"""
OBJECTIVE = """\
import json, os, time, zlib

def score(architecture):
    with open(HERE + "/evaluated.jsonl", "a") as f:
        f.write(json.dumps(architecture, sort_keys=True) + "\\n")
    time.sleep(SLEEP)
    return (zlib.crc32(json.dumps(architecture, sort_keys=True).encode()) % 1000) / 1000

def quality(architecture):
    return architecture["width"] / 128 + 0.5 * (architecture["act"] == "gelu")

def no_reward(architecture):
    return {"accuracy": 0.5}

def dies_once(architecture):
    if not os.path.exists(HERE + "/died"):
        open(HERE + "/died", "w").close()
        os._exit(3)
    return 0.5

def hangs(architecture):
    time.sleep(600)
"""


def setup_dir(path: Path, sleep: float = 0.6) -> Path:
    """`path` with space.yaml and toyobj.py (`score` sleeps `sleep` seconds per child)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "space.yaml").write_text(SPACE)
    objective = f"HERE = {str(path)!r}\n" + OBJECTIVE.replace("SLEEP", str(sleep))
    (path / "toyobj.py").write_text(objective)
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "search.cli", *args]


def env() -> dict[str, str]:
    """This checkout importable; no cluster or tracking server from the outer environment."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI"):
        environ.pop(name, None)
    return environ


def cli(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args), capture_output=True, text=True, cwd=cwd, env=env(), timeout=timeout
    )


def evaluated(cwd: Path) -> list[str]:
    """The architectures `score` was called on, in order."""
    path = cwd / "evaluated.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def client(cwd: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{cwd / 'runs' / 'mlflow.db'}")


def runs_of(cwd: Path, name: str):
    c = client(cwd)
    experiment = c.get_experiment_by_name(name)
    return c.search_runs([experiment.experiment_id], max_results=1000)


def trained(cwd: Path, name: str) -> list[str]:
    """Architectures of the finished child runs, in child order."""
    children = [r for r in runs_of(cwd, name) if r.data.tags.get("rlnas.role") == "child"]
    finished = sorted(
        (r for r in children if r.info.status == "FINISHED"), key=lambda r: r.info.run_name
    )
    return [
        json.dumps(json.loads(r.data.tags["rlnas.architecture"]), sort_keys=True) for r in finished
    ]
