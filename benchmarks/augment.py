"""Does augmenting the training batches help? Test accuracy of the same architectures trained
with and without augmentation, side by side.

Random architectures of a space are trained on a sequence archive exactly as a search's
children are (`ClassificationTrainer`: cross-validation, refit, fold ensemble), once plainly and
once with ``--augment``, from the same initial weights and seed; each kept model and its fold
models are scored on the archive's test split. The figures in RESULTS.md#augmentation came
from (2 busy cores)::

    python benchmarks/augment.py --task ucr:GunPoint --children 6 --seed 1
    python benchmarks/augment.py --task ucr:ItalyPowerDemand --children 6 --seed 1

It prints one line per architecture, the medians, and how the augmented child compares with the
plain one, child by child (kept model and the mean of its fold models).
"""

from __future__ import annotations

from fold_ensemble import child_arguments
from paired import compare

from trainers.augment import parse_augmentations


def main() -> None:
    parser = child_arguments(__doc__, epochs=12)
    parser.add_argument("--augment", default="scale,jitter,shift")
    args = parser.parse_args()
    names = parse_augmentations(args.augment)

    compare(
        args,
        {"plain": {}, "augmented": {"augment": names}},
        f"augment.py --augment {','.join(names)}",
    )


if __name__ == "__main__":
    main()
