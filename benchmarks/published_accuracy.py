"""Does the product train InceptionTime right? Its accuracy against the published one.

InceptionTime (Ismail Fawaz et al., 2020) is an ensemble of 5 networks, each trained on an
archive's whole training split for 1,500 epochs (one pass each) of batch
``min(64, n / 10)``, Adam at 1e-3 with the learning rate halved on a plateau of 50 epochs of
the training loss (down to 1e-4), keeping the weights of the lowest training loss; the
ensemble averages the networks' probabilities. This trains the hand-written network
(`spaces/builtin/defaults/inception_time.yaml`) so, through the classification trainer
(`SupervisedTrainer.train_as_published`, ``--lr-schedule plateau``), and scores each network
and the ensemble on the archive's own test split, against the accuracy aeon ships for
resample 0 (GunPoint 1.000, ItalyPowerDemand 0.966)::

    python benchmarks/published_accuracy.py --task ucr:ItalyPowerDemand
    python benchmarks/published_accuracy.py --task ucr:GunPoint

Each network's weights and test accuracy are kept under ``--cache`` as soon as it is trained,
so a killed run goes on where it stopped, and a second process with ``--only 3,4`` trains
those networks on another core meanwhile. ``--paper-epochs`` shortens the recipe for a quick
look (the result then says nothing of the published one).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from spaces.ensemble import Ensemble
from spaces.families import build_model
from spaces.families.inception import DEFAULT_INCEPTION_TIME
from spaces.families.resnet1d import DEFAULT_RESNET
from trainers import TrainOptions, get_trainer, load_task
from trainers.supervised import epoch_plan, split_lengths

NETWORKS = {"inception": DEFAULT_INCEPTION_TIME, "resnet1d": DEFAULT_RESNET}
PUBLISHED = {"ucr:GunPoint": 1.000, "ucr:ItalyPowerDemand": 0.966}
"""InceptionTime's test accuracy on the archive's own split (resample 0), as aeon ships it."""


def recipe(samples: int, paper_epochs: int) -> tuple[int, int]:
    """``(batch_size, epochs)``: the paper's batch for ``samples`` training series and its
    ``paper_epochs`` passes as this product's epochs (each several passes on a small split)."""
    batch = max(1, min(64, samples // 10))
    _, passes = epoch_plan(samples, batch)
    return batch, max(1, round(paper_epochs / passes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="ucr:ItalyPowerDemand")
    parser.add_argument("--family", choices=sorted(NETWORKS), default="inception")
    parser.add_argument("--networks", type=int, default=5)
    parser.add_argument("--paper-epochs", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cache", type=Path, default=Path("runs/cache/published_accuracy"))
    parser.add_argument(
        "--only",
        default=None,
        help="train only these networks (e.g. 3,4), without the ensemble: a second process "
        "for a second core",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task(args.task, seed=0)
    samples = len(task.x_train) + len(task.x_val)
    batch, epochs = recipe(samples, args.paper_epochs)
    print(
        f"{args.task}: {samples} training series, batch {batch}; {args.paper_epochs} paper "
        f"epochs are {epochs} of ours; {args.networks} {args.family} networks",
        flush=True,
    )
    trainer = get_trainer(task.kind)
    folder = args.cache / f"{args.task.replace(':', '-')}-{args.family}-{args.paper_epochs}"
    folder.mkdir(parents=True, exist_ok=True)
    members, accuracies = [], []
    seeds = range(args.networks) if args.only is None else [int(n) for n in args.only.split(",")]
    for seed in seeds:
        weights, scores = folder / f"{seed}.pt", folder / f"{seed}.json"
        model = build_model(
            args.family, NETWORKS[args.family], tuple(task.input_shape), task.num_outputs
        )
        if scores.exists():
            model.load_state_dict(torch.load(weights))
            test = json.loads(scores.read_text())
        else:
            start = time.perf_counter()
            options = TrainOptions(
                epochs=epochs,
                seed=seed,
                batch_size=batch,
                lr=1e-3,
                lr_schedule="plateau",
                device="cpu",
            )
            test = trainer.train_as_published(model, task, options)
            test["seconds"] = time.perf_counter() - start
            torch.save(model.state_dict(), weights)
            scores.write_text(json.dumps(test))
        model.eval()
        members.append(model)
        accuracies.append(test["test_accuracy"])
        print(
            f"  network {seed}: test accuracy {test['test_accuracy']:.4f} "
            f"({test['seconds'] / 60:.1f} min)",
            flush=True,
        )
    if args.only is not None:
        return
    ensemble = Ensemble(members, trainer.ensemble_combine).eval()
    lengths = split_lengths(ensemble, task, torch.device("cpu")).get("test")
    with torch.no_grad():
        scored = trainer.evaluate(ensemble, task, task.x_test, task.y_test, lengths)
    published = PUBLISHED.get(args.task) if args.family == "inception" else None
    print(
        f"{args.task}: the ensemble of {len(members)} scores {scored['accuracy']:.4f} on the "
        f"test split ({len(task.y_test)} series); its networks "
        f"{min(accuracies):.4f}-{max(accuracies):.4f}"
        + ("" if published is None else f"; published {published:.3f}")
    )
    print(f"reproduce: python benchmarks/published_accuracy.py --task {args.task}")


if __name__ == "__main__":
    main()
