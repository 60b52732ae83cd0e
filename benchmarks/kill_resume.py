"""One search SIGKILLed at random moments and resumed each time, against the same search
uninterrupted: children lost, finished children trained twice, running children trained
again, and the extra training and wall seconds the kills cost.

    python benchmarks/kill_resume.py --kills 5 --budget 24 --seed 0

Children are a custom objective that sleeps (`--child-seconds`), so the figures measure the
search's bookkeeping, not training noise. Every kill lands while children are running.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from search.tags import ARCHITECTURE_TAG, ROLE_TAG, tag_filter

ROOT = Path(__file__).resolve().parents[1]
NAME = "kill-resume"
SPACE = """\
family: custom
decisions:
  - {name: width, choices: [8, 16, 32, 64, 128, 256]}
  - {name: depth, choices: [1, 2, 3, 4]}
  - {name: act, choices: [relu, tanh, gelu, elu]}
"""
OBJECTIVE = """\
import json, os, time, zlib

def score(architecture):
    key = json.dumps(architecture, sort_keys=True)
    started = time.time()
    time.sleep({seconds})
    with open({log!r}, "a") as f:
        f.write(json.dumps({{"key": key, "start": started, "end": time.time()}}) + "\\n")
    return (zlib.crc32(key.encode()) % 1000) / 1000
"""


def prepare(path: Path, seconds: float) -> Path:
    path.mkdir(parents=True)
    (path / "space.yaml").write_text(SPACE)
    log = path / "evaluations.jsonl"
    (path / "kr_objective.py").write_text(OBJECTIVE.format(seconds=seconds, log=str(log)))
    return path


def command(args: argparse.Namespace, verb: str) -> list[str]:
    base = [sys.executable, "-m", "search.cli"]
    if verb == "resume":
        return [*base, "resume", NAME, "--quiet"]
    return [
        *base,
        "search",
        "--objective",
        "kr_objective:score",
        "--space",
        "space.yaml",
        "--name",
        NAME,
        "--controller",
        args.controller,
        "--budget",
        str(args.budget),
        "--concurrency",
        str(args.concurrency),
        "--seed",
        str(args.seed),
        "--quiet",
    ]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def evaluations(path: Path) -> list[dict]:
    log = path / "evaluations.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def finished_children(path: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(NAME)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        tag_filter(ROLE_TAG, "child") + " and attributes.status = 'FINISHED'",
        max_results=10000,
    )
    return runs


def run_to_end(path: Path, argv: list[str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=path, env=environment(), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"kill_resume: {' '.join(argv[3:5])} failed:\n{result.stderr[-3000:]}")
    return time.monotonic() - started


def kill_at_random(path: Path, argv: list[str], rng: random.Random, child_seconds: float):
    """Start the search, SIGKILL it while children run; returns the seconds it ran, or None
    when it finished first."""
    started = time.monotonic()
    process = subprocess.Popen(
        argv, cwd=path, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    before = len(evaluations(path))
    while len(evaluations(path)) == before:  # this leg's children are under way
        if process.poll() is not None:
            return None
        time.sleep(0.05)
    time.sleep(rng.uniform(0, 3 * child_seconds))
    if process.poll() is not None:
        return None
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(3)  # the watchdog ends the search's Ray
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--budget", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--child-seconds", type=float, default=1.0)
    parser.add_argument("--controller", default="evolution")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="rlnas-kill-resume-") as tmp:
        whole = prepare(Path(tmp, "whole"), args.child_seconds)
        whole_wall = run_to_end(whole, command(args, "search"))
        cut = prepare(Path(tmp, "cut"), args.child_seconds)
        trained_twice = kills = 0
        cut_wall = 0.0
        verb = "search"
        for _ in range(args.kills):
            finished_keys = {r.data.tags[ARCHITECTURE_TAG] for r in finished_children(cut)}
            done_before = len(evaluations(cut))
            ran = kill_at_random(cut, command(args, verb), rng, args.child_seconds)
            if ran is None:
                break
            kills += 1
            cut_wall += ran
            verb = "resume"
            # a finished child evaluated again after the kill would be trained twice
            again = evaluations(cut)[done_before:]
            trained_twice += sum(json.dumps(json.loads(e["key"])) in finished_keys for e in again)
        cut_wall += run_to_end(cut, command(args, verb))
        finished = finished_children(cut)
        numbers = [r.info.run_name for r in finished]
        whole_seconds = sum(e["end"] - e["start"] for e in evaluations(whole))
        cut_seconds = sum(e["end"] - e["start"] for e in evaluations(cut))
        rows = [
            ("kills (SIGKILL of the driver, children running)", kills),
            ("children finished, uninterrupted", len(finished_children(whole))),
            ("children finished, killed and resumed", len(set(numbers))),
            ("children lost", args.budget - len(set(numbers))),
            ("children recorded twice", len(numbers) - len(set(numbers))),
            ("finished children trained twice", trained_twice),
            ("running children trained again", len(evaluations(cut)) - args.budget),
            ("extra training seconds", f"{cut_seconds - whole_seconds:.1f}"),
            ("training seconds, uninterrupted", f"{whole_seconds:.1f}"),
            ("wall seconds, uninterrupted", f"{whole_wall:.1f}"),
            ("wall seconds, killed and resumed (every run)", f"{cut_wall:.1f}"),
        ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(
        f"\ncommand: python benchmarks/kill_resume.py --kills {args.kills} --budget "
        f"{args.budget} --concurrency {args.concurrency} --child-seconds {args.child_seconds} "
        f"--controller {args.controller} --seed {args.seed}"
    )


if __name__ == "__main__":
    main()
