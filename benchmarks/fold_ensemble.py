"""Does keeping the fold models help? Test accuracy of a cross-validated child's refit alone,
of one fold model (their mean), of the fold models' ensemble and of the kept ensemble (refit +
folds).

Random architectures of a space are trained on a small archive exactly as a search's children
are (`ClassificationTrainer`: 5-fold cross-validation, refit, ensemble); each kept ensemble is
then taken apart and every part scored on the archive's test split, so the four figures of one
architecture come from the same training run. The figures in RESULTS.md#fold-ensembles came
from (about 6 and 3 minutes on 2 busy cores)::

    python benchmarks/fold_ensemble.py --task ucr:GunPoint --epochs 12 --children 16 --seed 1
    python benchmarks/fold_ensemble.py --task ucr:ItalyPowerDemand --epochs 12 --children 16 \
        --seed 1

It prints one line per architecture, the medians, and how the kept ensemble compares with the
refit alone child by child (children whose refit was left out are counted apart).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from torch import nn

from spaces.ensemble import Ensemble
from spaces.families import build_model
from spaces.loading import load_space
from trainers import TrainOptions, configure_cpu_threads, get_trainer, load_task
from trainers.tasks import Task

COLUMNS = ("refit", "one fold", "folds", "kept")


def test_accuracy(model: nn.Module, task: Task) -> float:
    """Accuracy of ``model`` on the task's test split."""
    model.eval()
    with torch.no_grad():
        return (model(task.x_test).argmax(1) == task.y_test).float().mean().item()


def parts(task: Task, family: str, architecture: dict, result) -> dict[str, float]:
    """The four test accuracies of one child (`COLUMNS`; ``refit`` NaN when it was left out)."""
    build = lambda: build_model(family, architecture, task.input_shape, task.num_outputs)  # noqa: E731
    kept = Ensemble([build() for _ in range(result.ensemble)])
    kept.load_state_dict(result.state_dict)
    members = list(kept.members)
    refitted = result.metrics["refit"] == 1.0
    folds = members[1:] if refitted else members
    return {
        "refit": test_accuracy(members[0], task) if refitted else math.nan,
        "one fold": float(np.mean([test_accuracy(m, task) for m in folds])),
        "folds": test_accuracy(Ensemble(folds), task),
        "kept": test_accuracy(kept, task),
    }


def child_arguments(description: str, epochs: int) -> argparse.ArgumentParser:
    """The options of a benchmark that trains random children of a space on a task."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--task", default="ucr:GunPoint")
    parser.add_argument("--space", default="cnn1d")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--children", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main() -> None:
    args = child_arguments(__doc__, epochs=6).parse_args()
    configure_cpu_threads(2)
    space = load_space(args.space)
    task = load_task(args.task, seed=args.seed)
    trainer = get_trainer("classification")
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in range(args.children):
        architecture = space.decode(space.sample(rng))
        model = build_model(space.family, architecture, task.input_shape, task.num_outputs)
        start = time.perf_counter()
        result = trainer.fit(
            model, task, TrainOptions(epochs=args.epochs, seed=args.seed + i, lr=args.lr)
        )
        if not result.ensemble:
            raise SystemExit(f"{args.task} is not cross-validated: nothing to take apart")
        row = parts(task, space.family, architecture, result)
        rows.append(row)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items())
        print(
            f"child {i}: reward {result.reward:.4f}  {shown}  ({time.perf_counter() - start:.0f} s)"
        )
    medians = {k: float(np.nanmedian([r[k] for r in rows])) for k in COLUMNS}
    print("median test accuracy: " + "  ".join(f"{k} {v:.4f}" for k, v in medians.items()))
    paired = [r["kept"] - r["refit"] for r in rows if not math.isnan(r["refit"])]
    print(
        f"kept against the refit alone: better on {sum(d > 0 for d in paired)}, equal on "
        f"{sum(d == 0 for d in paired)}, worse on {sum(d < 0 for d in paired)} children (mean "
        f"{np.mean(paired):+.4f}); {len(rows) - len(paired)} had no refit to keep"
    )
    print(
        f"command: python benchmarks/fold_ensemble.py --task {args.task} --space {args.space} "
        f"--epochs {args.epochs} --children {args.children} --lr {args.lr} --seed {args.seed}"
    )


if __name__ == "__main__":
    main()
