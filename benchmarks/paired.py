"""Train the same random architectures two ways, side by side, and compare their test accuracy.

The shared loop of the benchmarks that ask whether one training option helps (`augment.py`,
`lr_schedule.py`): each architecture is built once and trained by two `ClassificationTrainer`
set-ups from the same initial weights and seed, exactly as a search's children are
(cross-validation, refit, fold ensemble); the kept model and the mean of its fold models are
scored on the task's test split.
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import numpy as np
from fold_ensemble import parts

from spaces.families import build_model
from spaces.loading import load_space
from trainers import TrainOptions, configure_cpu_threads, get_trainer, load_task


def compare(args: argparse.Namespace, variants: dict[str, dict[str, Any]], command: str) -> None:
    """Train ``args.children`` random architectures once per variant (two: `TrainOptions`
    fields each sets) and print the per-child lines, the medians and the child-by-child
    comparison, then ``command``."""
    (base, base_options), (other, other_options) = variants.items()
    configure_cpu_threads(2)
    space = load_space(args.space)
    task = load_task(args.task, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in range(args.children):
        architecture = space.decode(space.sample(rng))
        initial = build_model(space.family, architecture, task.input_shape, task.num_outputs)
        row, start = {}, time.perf_counter()
        for label, variant in ((base, base_options), (other, other_options)):
            options = TrainOptions(epochs=args.epochs, seed=args.seed + i, lr=args.lr, **variant)
            result = get_trainer("classification").fit(copy.deepcopy(initial), task, options)
            scored = parts(task, space.family, architecture, result)
            row[label] = (result.reward, scored["kept"], scored["one fold"])
        rows.append(row)
        shown = "  ".join(
            f"{label}: reward {r:.4f} test {kept:.4f} (fold models {fold:.4f})"
            for label, (r, kept, fold) in row.items()
        )
        print(f"child {i}: {shown}  ({time.perf_counter() - start:.0f} s)", flush=True)
    for what, column in (("kept model", 1), ("fold models", 2)):
        first = np.array([r[base][column] for r in rows])
        second = np.array([r[other][column] for r in rows])
        change = second - first
        print(
            f"{what}: median test accuracy {base} {np.median(first):.4f}, {other} "
            f"{np.median(second):.4f}; {other} better on {int((change > 0).sum())}, equal on "
            f"{int((change == 0).sum())}, worse on {int((change < 0).sum())} children (mean "
            f"{change.mean():+.4f})"
        )
    print(
        f"command: python benchmarks/{command} --task {args.task} --space {args.space} "
        f"--epochs {args.epochs} --children {args.children} --lr {args.lr} --seed {args.seed}"
    )
