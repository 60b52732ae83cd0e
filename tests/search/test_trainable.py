"""search.trainable.train_child on a sequence task: per-epoch and final metrics (Tune faked)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from search import trainable
from search.child_setup import ChildSetup
from search.stages import Outcome
from trainers import load_task
from trainers.classification import TIE_BREAK

SETUP = ChildSetup(
    task="uea:BasicMotions", family="tdnn", space="tdnn", epochs=2, batch_size=16, lr=1e-2
)
ARCHITECTURE = {"layers": [{"channels": 8, "kernel": 3}], "readout": "mean"}


def train_child(monkeypatch: pytest.MonkeyPatch, **options) -> list[dict]:
    """What a small tdnn child on BasicMotions reports to (a faked) Tune, ``options`` added to
    its setup."""
    reports: list[dict] = []
    monkeypatch.setattr(trainable.tune, "report", lambda r, checkpoint=None: reports.append(r))
    setup = dataclasses.replace(SETUP, **options)
    config = {"setup": setup, "architecture": ARCHITECTURE, "train_seed": 0}
    trainable.train_child(config)
    return reports


@pytest.mark.parametrize(
    ("metric", "options"),
    [
        (None, {}),
        ("uar", {"reward_expression": "val_uar"}),
        ("macro_f1", {"reward_expression": " val_macro_f1 "}),
        (None, {"reward_expression": "val_uar * 2"}),  # an expression: the trainer's default
    ],
)
def test_train_child_reports_metrics_and_reward(
    monkeypatch: pytest.MonkeyPatch, metric, options
) -> None:
    reports = train_child(monkeypatch, **options)
    epochs, final = reports[:-1], reports[-1]
    assert len(epochs) == 2 and final["final"]
    key = f"val_{metric or 'accuracy'}"
    rewards = [r["reward"] for r in epochs]
    assert rewards == [max(rewards[: i + 1]) for i in range(2)]  # the best so far
    best = max(r[key] for r in epochs)  # less the validation-loss tie-breaker
    n_val = len(load_task("uea:BasicMotions", seed=0).y_val)
    assert best - TIE_BREAK / n_val < rewards[-1] <= best
    assert final["reward"] == epochs[-1]["reward"]
    # every epoch carries the size, so a child stopped early has it too
    assert [r["params"] for r in epochs] == [final["params"]] * 2 and final["params"] > 0
    for name in ("val_accuracy", "val_macro_f1", "val_uar", "test_accuracy", "test_uar"):
        assert math.isfinite(final[name])


def test_train_child_augments_when_the_search_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def train_losses(augment: tuple[str, ...]) -> list[float]:
        reports = train_child(monkeypatch, augment=augment)
        assert math.isfinite(reports[-1]["test_accuracy"])
        return [r["train_loss"] for r in reports[:-1]]

    plain = train_losses(())
    assert train_losses(()) == plain  # seeded: only augmentation changes the losses
    assert train_losses(("scale", "jitter", "shift")) != plain


def test_a_diverging_child_ends_failed_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from controller import make_controller
    from search.searcher import ControllerSearcher
    from spaces import load_space

    final = train_child(monkeypatch, lr=float("inf"))[-1]
    assert final["final"] and final["diverged"]
    assert final["failure"].startswith("diverged: a loss became NaN or infinite at epoch")
    searcher = ControllerSearcher(make_controller("random", load_space("tdnn")), SETUP, bool)
    assert searcher.outcome("t", final, False) == Outcome(None)  # failed, not by an error


def test_a_child_that_cannot_be_built_at_run_time_fails_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from search.failures import reporting_failures

    reports: list[dict] = []
    monkeypatch.setattr("ray.tune.report", lambda r, checkpoint=None: reports.append(r))
    monkeypatch.setattr(trainable.tune, "report", lambda r, checkpoint=None: reports.append(r))
    unbuildable = {"layers": [{"channels": 8, "kernel": 3}], "readout": "nosuch"}
    config = {"setup": SETUP, "architecture": unbuildable, "train_seed": 0}
    reporting_failures(trainable.train_child)(config)
    [final] = reports
    assert final["final"] and final["error"].startswith("cannot be built:")
    assert "Traceback" in final["traceback"] and math.isnan(final["reward"])


def test_the_setup_pickles_as_tune_sends_it_and_resolves_paths(tmp_path, monkeypatch) -> None:
    import pickle

    import torch

    from trainers import get_trainer

    setup = dataclasses.replace(SETUP, augment=("jitter",), reward_expression="val_uar")
    assert pickle.loads(pickle.dumps({"setup": setup}))["setup"] == setup
    with pytest.raises(dataclasses.FrozenInstanceError):
        setup.epochs = 3  # type: ignore[misc]
    options = setup.train_options(get_trainer("classification"), 7, torch.device("cpu"))
    assert (options.seed, options.metric, options.augment) == (7, "uar", ("jitter",))
    assert options.reference_dir is None  # a supervised trainer has no reference classifier
    gan = dataclasses.replace(SETUP, cwd=str(tmp_path), reward_expression="val_uar")
    options = gan.train_options(get_trainer("gan"), 0, torch.device("cpu"))
    assert options.metric is None  # uar is not a gan reward: the trainer's default
    assert options.reference_dir == str(tmp_path / "runs" / "cache" / "reference")
    (tmp_path / "data.csv").write_text("")
    monkeypatch.chdir(tmp_path.parent)
    assert dataclasses.replace(gan, task="data.csv").task_path() == str(tmp_path / "data.csv")
    assert gan.task_path() == "uea:BasicMotions"
