"""Which time-series recipe to recommend: chosen by leave-one-archive-out, not on one archive.

A recipe is the flags of one ``rlnas search`` command. For each candidate recipe, each UCR
archive that ships with aeon and has InceptionTime's published accuracy beside it (aeon's own
results files), and each seed, this runs one search with ``--time-budget`` as a user would,
then reads the accuracy on the archive's test split of the best architecture's trainings
(``best_architecture_test_accuracy``; the best child's when nothing was confirmed). A
search's score is that accuracy less InceptionTime's mean over its 30 published resamples.

Leave-one-archive-out: for each archive in turn, the recipe of highest mean score on the
*other* archives is chosen, and its score on the archive left out is what the protocol
reports. A recipe chosen in every fold is the one to recommend::

    python benchmarks/recipe_loao.py --time-budget 10m --seeds 1

A search already finished under its name (``loao-<recipe>-<archive>-<seed>-<budget>``) is
read, not run again, and one cut off is resumed, so a killed run goes on where it stopped.
Each search needs the machine to itself: a time budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
from pathlib import Path

import aeon
from aeon.benchmarking.results_loaders import get_estimator_results
from scheduler_seeds import run_or_read

COMMON = "--space cnn1d --budget 1000 --epochs 12 --lr-schedule cosine --confirm 5"
RECIPES = {
    "augment": f"{COMMON} --augment scale,jitter,shift",
    "plain": COMMON,
}
"""The candidates: the GunPoint recipe (its augmentation chosen on GunPoint) and the same
without augmentation."""

ARCHIVES = ["ArrowHead", "GunPoint", "ItalyPowerDemand", "OSULeaf"]
"""The univariate UCR archives aeon ships whose InceptionTime results it ships too (ACSF1, the
fifth, has series of 1,460 points: a child there takes minutes on 2 cores)."""

PUBLISHED = Path(aeon.__file__).parent / "testing" / "example_results_files"


def published_mean(archives: list[str]) -> dict[str, float]:
    """InceptionTime's mean test accuracy over its 30 resamples, per archive."""
    found = get_estimator_results(
        "InceptionTime", archives, num_resamples=None, path=os.fspath(PUBLISHED)
    )["InceptionTime"]
    missing = [a for a in archives if a not in found]
    if missing:
        sys.exit(f"no published InceptionTime accuracy for {', '.join(missing)} in {PUBLISHED}")
    return {a: float(statistics.mean(found[a])) for a in archives}


def search(recipe: str, archive: str, seed: int, args: argparse.Namespace) -> float:
    """The best architecture's test accuracy of one search, run first if need be."""
    name = f"loao-{recipe}-{archive}-{seed}-{args.time_budget}"
    argv = ["rlnas", "search", "--task", f"ucr:{archive}", *shlex.split(RECIPES[recipe])]
    argv += ["--time-budget", args.time_budget, "--seed", str(seed)]
    metrics = run_or_read(name, argv, args.tracking_uri).data.metrics
    return float(metrics.get("best_architecture_test_accuracy", metrics["best_test_accuracy"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-budget", default="10m", help="of each search (default 10m)")
    parser.add_argument("--seeds", type=int, default=1, help="searches per recipe and archive")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="candidates, by name")
    parser.add_argument("--archives", default=",".join(ARCHIVES))
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    recipes, archives = args.recipes.split(","), args.archives.split(",")
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown or args.seeds < 1 or len(archives) < 2:
        parser.error(
            f"expected recipes among {', '.join(RECIPES)}, --seeds >= 1 and two archives or "
            f"more; got {args.recipes!r}, {args.seeds}, {args.archives!r}"
        )
    reference = published_mean(archives)
    score: dict[tuple[str, str], float] = {}
    for archive in archives:
        for recipe in recipes:
            tests = [search(recipe, archive, seed, args) for seed in range(args.seeds)]
            score[recipe, archive] = statistics.mean(tests) - reference[archive]
            print(
                f"{archive:<17} {recipe:<8} best architecture's test accuracy "
                f"{statistics.mean(tests):.4f} over {len(tests)} seed(s); InceptionTime "
                f"{reference[archive]:.4f}; score {score[recipe, archive]:+.4f}",
                flush=True,
            )
    print(f"\nleave one archive out, {args.time_budget} searches, {args.seeds} seed(s) each:")
    chosen = []
    for out in archives:
        rest = [a for a in archives if a != out]
        pick = max(recipes, key=lambda r: statistics.mean(score[r, a] for a in rest))
        chosen.append(pick)
        print(
            f"  left out {out:<17} chosen on the others: {pick:<8} its score there "
            f"{score[pick, out]:+.4f}"
        )
    held_out = [score[pick, out] for pick, out in zip(chosen, archives, strict=True)]
    print(
        f"mean held-out score {statistics.mean(held_out):+.4f}; chosen in every fold: "
        f"{chosen[0] if len(set(chosen)) == 1 else 'no single recipe'}"
    )
    print(
        f"reproduce: python benchmarks/recipe_loao.py --time-budget {args.time_budget} "
        f"--seeds {args.seeds} --recipes {args.recipes} --archives {args.archives}"
    )


if __name__ == "__main__":
    main()
