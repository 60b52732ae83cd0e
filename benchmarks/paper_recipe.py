"""What training InceptionTime and Wang et al.'s ResNet as their papers did costs here.

InceptionTime (Ismail Fawaz et al., 2020) trains each of its 5 networks for 1,500 epochs of
batch 64 with Adam and learning-rate reduction on plateau; the ResNet of Wang et al. (2017)
for 1,500 epochs as well (Ismail Fawaz et al.'s 2019 review). A paper epoch is one pass over
the training split; one of ours shows the model at least 1,024 samples
(`trainers.supervised.MIN_EPOCH_SAMPLES`), several passes on a small archive. This times
passes of the hand-written networks (`spaces/builtin/defaults/`) over an archive's whole
training split, as the product trains them (Adam, batch 64, one torch thread per CPU of a
child), and prints the cost of the paper's recipe and how many of our epochs it is::

    python benchmarks/paper_recipe.py --task ucr:GunPoint --passes 20
    python benchmarks/paper_recipe.py --task ucr:ItalyPowerDemand --passes 20

The medians of the per-pass times are quoted; the machine's load moves them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spaces.families import build_model
from spaces.families.inception import DEFAULT_INCEPTION_TIME
from spaces.families.resnet1d import DEFAULT_RESNET
from trainers import load_task
from trainers.supervised import epoch_plan, forward

PAPER_EPOCHS = 1500
ENSEMBLE = 5  # InceptionTime's networks
NETWORKS = {"inception": DEFAULT_INCEPTION_TIME, "resnet1d": DEFAULT_RESNET}


def pass_seconds(family: str, task, passes: int, batch_size: int, seed: int) -> list[float]:
    """Seconds of each of `passes` training passes over the task's training split."""
    torch.manual_seed(seed)
    model = build_model(family, NETWORKS[family], tuple(task.input_shape), task.num_outputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = task.x_train, task.y_train
    lengths = None if task.lengths is None else task.lengths.get("train")
    model.train()
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        for idx in torch.randperm(len(x)).split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(forward(model, x, idx, lengths), y[idx])
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="ucr:GunPoint")
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a child's CPUs)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    task = load_task(args.task, seed=args.seed)
    samples = len(task.x_train)
    _, per_epoch = epoch_plan(samples, args.batch_size)
    print(
        f"{args.task}: {samples} training series of shape {tuple(task.input_shape)}; one of our "
        f"epochs is {per_epoch} passes, so {PAPER_EPOCHS} paper epochs are "
        f"{PAPER_EPOCHS / per_epoch:.0f} of ours; {args.threads} torch thread(s)"
    )
    for family in NETWORKS:
        times = pass_seconds(family, task, args.passes, args.batch_size, args.seed)
        each = statistics.median(times[1:] or times)  # the first pass warms up
        network = each * PAPER_EPOCHS
        print(
            f"  {family:<9} {each * 1000:7.1f} ms per pass (median of {len(times)}): "
            f"{PAPER_EPOCHS} epochs {network / 60:5.1f} min per network, "
            f"{ENSEMBLE * network / 60:6.1f} min for {ENSEMBLE} networks on one core"
        )
    print(f"reproduce: python benchmarks/paper_recipe.py --task {args.task} --passes {args.passes}")


if __name__ == "__main__":
    main()
