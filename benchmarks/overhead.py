"""What a search costs beyond its children's own work: this project against a plain loop.

    python benchmarks/overhead.py                       # 0, 2 and 10 s children, 1 and 2 at once
    python benchmarks/overhead.py --seconds 2 --children 40 --concurrency 2
    python benchmarks/overhead.py --bare-tune           # Ray Tune alone, Ray's result waits or ours

Each child is a custom objective that sleeps for a fixed time, proposed by ``random``. The
plain loop asks the same controller and runs the same objective in-process on as many threads
as children run at once. For each setting, measured side by side in one process: wall time of
both, **start-up** (from `run_search`'s call to the first child's start: Ray, MLflow, the first
worker), **wind-down** (from the last child's end to `run_search`'s return: the records' last
writes, Ray's shutdown), **overhead per child** (the search's time from its first child's
start to its last child's end, minus the plain loop's wall time, per child) and the ratio of
those two times. Every search tracks to its own SQLite store in a temporary folder.

``--bare-tune`` measures Ray Tune alone: 20 trials that each report once, one at a time with
actors reused, with Ray's own result waits and with `search.tune_polling`'s, alternated three
times; seconds per trial (medians).
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller import make_controller  # noqa: E402
from search import SearchConfig, run_search  # noqa: E402
from spaces import load_space  # noqa: E402

SPACE = "mlp"
MEASURABLE_S = 0.01
"""A plain loop shorter than this (children of 0 s) gives no ratio."""


def sleeper(architecture: dict) -> dict:
    """The child: sleeps RLNAS_CHILD_SECONDS, notes when it started and ended, returns a
    reward."""
    with open(os.environ["RLNAS_CHILD_MARKS"], "a") as f:
        f.write(f"start {time.time()}\n")
    time.sleep(float(os.environ["RLNAS_CHILD_SECONDS"]))
    with open(os.environ["RLNAS_CHILD_MARKS"], "a") as f:
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


def project(children: int, concurrency: int, folder: Path) -> tuple[float, float, float]:
    """(wall, start-up, wind-down) seconds of `rlnas search` over the same children."""
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
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RLNAS_CHILD_MARKS"] = str(Path(tmp, "marks.txt"))
        for seconds in [float(s) for s in args.seconds.split(",")]:
            children = args.children or (40 if seconds < 1 else 20 if seconds < 5 else 8)
            os.environ["RLNAS_CHILD_SECONDS"] = str(seconds)
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                plain = plain_loop(children, concurrency)
                wall, startup, winddown = project(children, concurrency, Path(tmp))
                running = wall - startup - winddown
                per_child = (running - plain) / children
                rows.append(
                    (seconds, concurrency, children, plain, wall, startup, winddown, running)
                )
                print(
                    f"children of {seconds:g} s, {concurrency} at once, {children} children: "
                    f"plain {plain:.1f} s, rlnas {wall:.1f} s (start-up {startup:.1f} s, "
                    f"wind-down {winddown:.1f} s), overhead {per_child:+.3f} s per child"
                    + (f", ratio {running / plain:.3f}" if plain >= MEASURABLE_S else ""),
                    flush=True,
                )
    print()
    print(
        "| child s | at once | children | plain loop s | rlnas s | start-up s | wind-down s "
        "| overhead s per child | ratio while children run |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for seconds, concurrency, children, plain, wall, startup, winddown, running in rows:
        ratio = f"{running / plain:.3f}" if plain >= MEASURABLE_S else "-"
        print(
            f"| {seconds:g} | {concurrency} | {children} | {plain:.1f} | {wall:.1f} | "
            f"{startup:.1f} | {winddown:.1f} | {(running - plain) / children:.3f} | {ratio} |"
        )
    throughput = {(s, c): n / running for s, c, n, *_, running in rows if running > 0}
    for seconds in sorted({s for s, *_ in rows}):
        if (seconds, 1) in throughput and (seconds, 2) in throughput and seconds > 0:
            gain = throughput[(seconds, 2)] / throughput[(seconds, 1)]
            print(f"children of {seconds:g} s: 2 at once give {gain:.2f}x the throughput of 1")
    print(f"median start-up {statistics.median(r[5] for r in rows):.1f} s")
    print(f"median wind-down {statistics.median(r[6] for r in rows):.1f} s")
    print(f"reproduce: {shlex.join(['python', 'benchmarks/overhead.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
