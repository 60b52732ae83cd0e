"""Does augmenting the training batches help? Test accuracy of the same architectures trained
with and without augmentation, side by side.

Random architectures of a space are trained on a sequence archive exactly as a search's
children are (`ClassificationTrainer`: cross-validation, refit, fold ensemble), once plainly and
once with ``--augment``, from the same initial weights and seed; each kept model and its fold
models are scored on the archive's test split. The README's figures came from (2 busy cores)::

    python benchmarks/augment.py --task ucr:GunPoint --children 8 --seed 1
    python benchmarks/augment.py --task ucr:ItalyPowerDemand --children 8 --seed 1

It prints one line per architecture, the medians, and how the augmented child compares with the
plain one, child by child (kept model and the mean of its fold models).
"""

from __future__ import annotations

import copy
import time

import numpy as np
from fold_ensemble import child_arguments, parts

from spaces.families import build_model
from spaces.loading import load_space
from trainers import configure_cpu_threads, get_trainer, load_task
from trainers.augment import parse_augmentations


def main() -> None:
    parser = child_arguments(__doc__, epochs=12)
    parser.add_argument("--augment", default="scale,jitter,shift")
    args = parser.parse_args()
    configure_cpu_threads(2)
    space = load_space(args.space)
    task = load_task(args.task, seed=args.seed)
    names = parse_augmentations(args.augment)
    rng = np.random.default_rng(args.seed)
    rows = []
    for i in range(args.children):
        architecture = space.decode(space.sample(rng))
        initial = build_model(space.family, architecture, task.input_shape, task.num_outputs)
        row, start = {}, time.perf_counter()
        for label, augment in (("plain", ()), ("augmented", names)):
            trainer = get_trainer("classification")
            trainer.augment = augment
            result = trainer.fit(
                copy.deepcopy(initial), task, epochs=args.epochs, seed=args.seed + i, lr=args.lr
            )
            scored = parts(task, space.family, architecture, result)
            row[label] = (result.reward, scored["kept"], scored["one fold"])
        rows.append(row)
        shown = "  ".join(
            f"{label}: reward {r:.4f} test {kept:.4f} (fold models {fold:.4f})"
            for label, (r, kept, fold) in row.items()
        )
        print(f"child {i}: {shown}  ({time.perf_counter() - start:.0f} s)", flush=True)
    for what, column in (("kept model", 1), ("fold models", 2)):
        plain = np.array([r["plain"][column] for r in rows])
        augmented = np.array([r["augmented"][column] for r in rows])
        change = augmented - plain
        print(
            f"{what}: median test accuracy plain {np.median(plain):.4f}, augmented "
            f"{np.median(augmented):.4f}; augmented better on {int((change > 0).sum())}, equal "
            f"on {int((change == 0).sum())}, worse on {int((change < 0).sum())} children (mean "
            f"{change.mean():+.4f})"
        )
    print(
        f"command: python benchmarks/augment.py --task {args.task} --space {args.space} "
        f"--epochs {args.epochs} --children {args.children} --augment {','.join(names)} "
        f"--lr {args.lr} --seed {args.seed}"
    )


if __name__ == "__main__":
    main()
