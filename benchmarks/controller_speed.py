"""Milliseconds a controller takes per ask plus tell, on a built-in space, side by side.

    python benchmarks/controller_speed.py --space cnn --asks 400 \
        --controllers reinforce,reinforce:rank_samples=0,local,evolution,tpe

The reward is a deterministic hash of the architecture in [0, 1) (the controllers' own cost is
measured, not a task's), one torch thread, every controller on the same space in one process,
one after another. Printed per controller: the median and 90th percentile of the per-call
times over all asks, and the mean over the last 100 (the model-based controllers grow slower
as they learn from more rewards). `--clock cpu` times the process's CPU time instead of the
wall clock: on a machine busy with other work, the wall clock also counts the waits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib

import numpy as np
import torch

from controller import make_controller
from search.bench.runs import check_spec, parse_spec
from spaces import load_space


def reward(architecture: dict) -> float:
    """A fixed pseudo-random reward per architecture."""
    return zlib.crc32(json.dumps(architecture, sort_keys=True).encode()) % 10_000 / 10_000


def milliseconds(spec: str, space, asks: int, seed: int = 0, clock=time.perf_counter) -> np.ndarray:
    """Per-call milliseconds of `asks` asks each followed by its tell, timed with `clock`."""
    name, options = parse_spec(spec)
    controller = make_controller(name, space, seed=seed, **options)
    times = np.empty(asks)
    for n in range(asks):
        start = clock()
        candidate = controller.ask()
        controller.tell(candidate, reward(candidate.architecture))
        times[n] = (clock() - start) * 1000
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="cnn", help="a built-in space or a YAML file")
    parser.add_argument("--asks", type=int, default=400)
    parser.add_argument("--controllers", default="reinforce,reinforce:rank_samples=0,local")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    space = load_space(args.space)
    specs = [s.strip() for s in args.controllers.split(",") if s.strip()]
    for spec in specs:
        check_spec(spec)
    print(f"space {args.space} ({space.cardinality():,} architectures), {args.asks} asks each")
    print(f"{'controller':<40} {'median ms':>10} {'p90 ms':>8} {'last-100 mean ms':>17}")
    for spec in specs:
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        times = milliseconds(spec, space, args.asks, clock=clock)
        tail = times[-100:].mean()
        median, p90 = np.median(times), np.percentile(times, 90)
        print(f"{spec:<40} {median:>10.2f} {p90:>8.2f} {tail:>17.2f}", flush=True)
    print("reproduce: python benchmarks/controller_speed.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
