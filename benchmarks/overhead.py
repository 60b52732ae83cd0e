"""What a search costs beyond its children's own work: this project against a plain loop.

    python benchmarks/overhead.py                       # 0, 2 and 10 s children, 1 and 2 at once
    python benchmarks/overhead.py --seconds 2 --children 40 --concurrency 2
    python benchmarks/overhead.py --bare-tune           # Ray Tune alone, Ray's result waits or ours
    python benchmarks/overhead.py --ray own,kept        # also through a head kept up (--address)

Each child is a custom objective that sleeps for a fixed time, proposed by ``random``. The
plain loop asks the same controller and runs the same objective in-process on as many threads
as children run at once. For each setting, measured side by side in one process: wall time of
both, **start-up** (from `run_search`'s call to the first child's start: Ray, MLflow, the first
worker), **wind-down** (from the last child's end to `run_search`'s return: the records' last
writes, Ray's shutdown), **overhead per child** (the search's time from its first child's
start to its last child's end, minus the plain loop's wall time, per child) and the ratio of
those two times. Every search tracks to its own SQLite store in a temporary folder.

``--ray kept`` runs the same searches on a Ray head that the benchmark starts once beforehand
(``ray start --head``, then ``--address``), as a user who keeps one up between searches does:
the start-up then counts joining it and the first worker, not the head's own start.

``--bare-tune`` measures Ray Tune alone: 20 trials that each report once, one at a time with
actors reused, with Ray's own result waits and with `search.tune_polling`'s, alternated three
times; seconds per trial (medians).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller import make_controller  # noqa: E402
from search import SearchConfig, run_search  # noqa: E402
from spaces import load_space  # noqa: E402
from tests.search.ray_heads import Head  # noqa: E402

SPACE = "mlp"
MEASURABLE_S = 1.0
"""A plain loop shorter than this (children of 0 s: the controller alone) gives no ratio."""


def sleeper(architecture: dict) -> dict:
    """The child: sleeps the seconds written beside RLNAS_CHILD_MARKS, notes when it started
    and ended there, returns a reward. (A file, not the environment: a head started before
    the search has the environment of its own start.)"""
    marks = Path(os.environ["RLNAS_CHILD_MARKS"])
    with open(marks, "a") as f:
        f.write(f"start {time.time()}\n")
    time.sleep(float(marks.with_suffix(".seconds").read_text()))
    with open(marks, "a") as f:
        f.write(f"end {time.time()}\n")
    return {"reward": (len(str(architecture)) % 97) / 97}


def plain_loop(children: int, concurrency: int) -> float:
    """Seconds a plain loop takes: ask, run `concurrency` children at once, tell."""
    controller = make_controller("random", load_space(SPACE), seed=0)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        done = 0
        while done < children:
            batch = [controller.ask() for _ in range(min(concurrency, children - done))]
            rewards = pool.map(lambda c: sleeper(c.architecture)["reward"], batch)
            for candidate, reward in zip(batch, rewards, strict=True):
                controller.tell(candidate, reward)
            done += len(batch)
    return time.perf_counter() - started


def project(
    children: int, concurrency: int, folder: Path, address: str | None
) -> tuple[float, float, float]:
    """(wall, start-up, wind-down) seconds of `rlnas search` over the same children, on a Ray
    of its own or at `address`."""
    marks_file = Path(os.environ["RLNAS_CHILD_MARKS"])
    marks_file.write_text("")
    config = SearchConfig(
        objective=sleeper,
        space=SPACE,
        controller="random",
        budget=children,
        concurrency=concurrency,
        duplicates="retrain",
        name=f"overhead-{children}-{concurrency}-{time.time_ns()}",
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        storage=str(folder / "ray"),
        address=address,
        quiet=True,
    )
    began = time.time()
    result = run_search(config, new=True)
    ended = time.time()
    marks = [line.split() for line in marks_file.read_text().splitlines()]
    first = min(float(t) for kind, t in marks if kind == "start")
    last = max(float(t) for kind, t in marks if kind == "end")
    assert len(result.leaderboard) == children, "every child should finish"
    return ended - began, first - began, ended - last


@contextlib.contextmanager
def kept_head():
    """The address of a Ray head (`ray start --head`) kept up while the block runs."""
    head = Head(env={"PYTHONPATH": str(ROOT)})
    try:
        time.sleep(5)  # let the head settle, as one started earlier would have
        yield head.address
    finally:
        head.close()


def _reporting_once(shorten: bool):
    def trainable(config: dict) -> None:
        from ray import tune

        if shorten:
            from search.tune_polling import shorten_result_waits

            shorten_result_waits()
        tune.report({"reward": 1.0})

    return trainable


def bare_tune(trials: int = 20, rounds: int = 3) -> dict[bool, float]:
    """Seconds per trial of a bare Tune run, with Ray's result waits and with ours."""
    import ray
    from ray import tune

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    ray.init(include_dashboard=False, log_to_driver=False)
    seconds: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for shorten in (False, True):
                tuner = tune.Tuner(
                    _reporting_once(shorten),
                    tune_config=tune.TuneConfig(
                        num_samples=trials, max_concurrent_trials=1, reuse_actors=True
                    ),
                    run_config=tune.RunConfig(storage_path=tmp, verbose=0),
                )
                started = time.perf_counter()
                tuner.fit()
                seconds[shorten].append((time.perf_counter() - started) / trials)
    ray.shutdown()
    return {k: statistics.median(v) for k, v in seconds.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", default="0,2,10", help="child durations (default 0,2,10)")
    parser.add_argument("--concurrency", default="1,2", help="children at once (default 1,2)")
    parser.add_argument(
        "--children",
        type=int,
        default=0,
        help="children per setting (default: 40, 20 and 8 for 0, 2 and 10 s children)",
    )
    parser.add_argument(
        "--ray",
        default="own",
        help="own: each search starts its Ray (the default); kept: a head started beforehand; "
        "own,kept: both, side by side",
    )
    parser.add_argument("--bare-tune", action="store_true", help="Ray Tune alone (see above)")
    args = parser.parse_args(argv)
    if args.bare_tune:
        per_trial = bare_tune()
        print(
            f"Ray Tune, one report per trial: {per_trial[False]:.3f} s per trial with Ray's "
            f"result waits, {per_trial[True]:.3f} s with search.tune_polling's"
        )
        print(f"reproduce: {shlex.join(['python', 'benchmarks/overhead.py', *sys.argv[1:]])}")
        return
    rays = args.ray.split(",")
    if not set(rays) <= {"own", "kept"}:
        parser.error(f"--ray: expected own, kept or own,kept; got {args.ray!r}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        marks = Path(tmp, "marks.txt")
        os.environ["RLNAS_CHILD_MARKS"] = str(marks)
        address = stack.enter_context(kept_head()) if "kept" in rays else None
        for seconds in [float(s) for s in args.seconds.split(",")]:
            children = args.children or (40 if seconds < 1 else 20 if seconds < 5 else 8)
            marks.with_suffix(".seconds").write_text(str(seconds))
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                plain = plain_loop(children, concurrency)
                for ray in rays:
                    at = address if ray == "kept" else None
                    wall, startup, winddown = project(children, concurrency, Path(tmp), at)
                    running = wall - startup - winddown
                    per_child = (running - plain) / children
                    row = (ray, seconds, concurrency, children, plain, wall, startup, winddown)
                    rows.append((*row, running))
                    print(
                        f"children of {seconds:g} s, {concurrency} at once, {children} children,"
                        f" Ray {ray}: plain {plain:.1f} s, rlnas {wall:.1f} s (start-up "
                        f"{startup:.1f} s, wind-down {winddown:.1f} s), overhead "
                        f"{per_child:+.3f} s per child"
                        + (f", ratio {running / plain:.3f}" if plain >= MEASURABLE_S else ""),
                        flush=True,
                    )
    print()
    print(
        "| Ray | child s | at once | children | plain loop s | rlnas s | start-up s "
        "| wind-down s | overhead s per child | ratio while children run |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for ray, seconds, concurrency, children, plain, wall, startup, winddown, running in rows:
        ratio = f"{running / plain:.3f}" if plain >= MEASURABLE_S else "-"
        print(
            f"| {ray} | {seconds:g} | {concurrency} | {children} | {plain:.1f} | {wall:.1f} | "
            f"{startup:.1f} | {winddown:.1f} | {(running - plain) / children:.3f} | {ratio} |"
        )
    for ray in rays:
        mine = [r for r in rows if r[0] == ray]
        throughput = {(s, c): n / running for _, s, c, n, *_, running in mine}
        for seconds in sorted({r[1] for r in mine}):
            if (seconds, 1) in throughput and (seconds, 2) in throughput and seconds > 0:
                gain = throughput[(seconds, 2)] / throughput[(seconds, 1)]
                print(
                    f"Ray {ray}, children of {seconds:g} s: 2 at once give {gain:.2f}x the "
                    f"throughput of 1"
                )
        print(f"Ray {ray}: median start-up {statistics.median(r[6] for r in mine):.1f} s")
        print(f"Ray {ray}: median wind-down {statistics.median(r[7] for r in mine):.1f} s")
    print(f"reproduce: {shlex.join(['python', 'benchmarks/overhead.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
