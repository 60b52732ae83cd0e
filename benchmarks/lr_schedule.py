"""Does a cosine learning-rate schedule help? Test accuracy of the same architectures trained
with a constant learning rate and with one decaying to 0 by the last epoch, side by side.

Random architectures of a space are trained on a sequence archive exactly as a search's
children are (`ClassificationTrainer`: cross-validation, refit, fold ensemble), once with each
schedule, from the same initial weights and seed, optionally with ``--augment``; each kept model
and its fold models are scored on the archive's test split. The figures in
RESULTS.md#learning-rate-schedule came from (2 cores)::

    python benchmarks/lr_schedule.py --task ucr:GunPoint --children 8 --augment scale,jitter,shift \
        --seed 1
    python benchmarks/lr_schedule.py --task ucr:ItalyPowerDemand --children 8 --seed 1

It prints one line per architecture, the medians, and how the cosine child compares with the
constant one, child by child (kept model and the mean of its fold models).
"""

from __future__ import annotations

from fold_ensemble import child_arguments
from paired import compare

from trainers.augment import parse_augmentations


def main() -> None:
    parser = child_arguments(__doc__, epochs=12)
    parser.add_argument("--augment", default="none")
    args = parser.parse_args()
    names = parse_augmentations(args.augment)

    compare(
        args,
        {
            "constant": {"augment": names, "lr_schedule": "constant"},
            "cosine": {"augment": names, "lr_schedule": "cosine"},
        },
        f"lr_schedule.py --augment {','.join(names) or 'none'}",
    )


if __name__ == "__main__":
    main()
