"""Run one search: controller + Ray Tune children + MLflow tracking."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray
import torch
from mlflow.artifacts import download_artifacts

from controller import make_controller
from search.combined import combine_model_dirs, evaluate_on_test
from search.config import ConfigError, SearchConfig
from search.objective import evaluate_child, load_objective
from search.progress import ProgressCallback, format_seconds
from search.records import SearchLog
from search.rewards import RewardExpression
from search.searcher import ControllerSearcher, default_reward
from search.tracking import ChildRunCallback, Tracker
from search.trainable import train_child
from spaces import SpaceError, load_space
from spaces.ensemble import Ensemble
from spaces.families import InvalidArchitecture, build_model, family_trainer
from trainers import get_trainer, load_task
from trainers.augment import check_augmentable

__all__ = ["SearchResult", "run_search"]


@dataclass
class SearchResult:
    """What a finished search leaves behind."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    leaderboard: pd.DataFrame
    best_run_id: str | None
    best_reward: float | None
    model_version: int | None
    seconds: float
    failed: int
    invalid: int
    reused: int
    interrupted: bool = False
    kept: dict[str, Any] | None = None
    """After confirmation runs, the model kept (see `SearchConfig.keep`): trainings as one
    ensemble (``trainings``, ``architectures``, ``networks``, ``metrics``: its ``test_*``;
    ``best_architecture_metrics``: the best architecture's trainings alone, when others joined
    them, else None)."""

    @property
    def best(self) -> dict[str, Any] | None:
        return None if self.leaderboard.empty else self.leaderboard.iloc[0].to_dict()


def _ray_init(config: SearchConfig) -> bool:
    """Start or join Ray; returns whether this call started it."""
    if ray.is_initialized():
        return False
    address = config.address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {
        "logging_level": logging.WARNING,
        "log_to_driver": False,  # children report through Tune; errors come back as files
        "configure_logging": True,
    }
    if address is None:
        kwargs["include_dashboard"] = False
        # Ray announces its default token authentication of a new local cluster on stderr.
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    ray.init(address=address, **kwargs)
    return True


def _concurrency(config: SearchConfig) -> int:
    """Children at once: the flag, else what the cluster's CPUs (and GPUs) allow."""
    resources = ray.cluster_resources()
    for key, wanted in (("CPU", config.cpus_per_trial), ("GPU", config.gpus_per_trial)):
        if wanted and resources.get(key, 0) < wanted:
            raise ConfigError(
                f"{key.lower()}s_per_trial: {wanted:g} {key}s per child asked, but the Ray "
                f"cluster has {resources.get(key, 0):g}"
            )
    if config.concurrency:
        return config.concurrency
    slots = int(resources.get("CPU", 1) // config.cpus_per_trial)
    if config.gpus_per_trial:
        slots = min(slots, int(resources.get("GPU", 0) // config.gpus_per_trial))
    return max(1, min(slots, config.budget))


def _trial_name(trial) -> str:
    return f"child-{trial.config.get('candidate_id', 0):04d}-{trial.trial_id}"


def _validator(space, task) -> Callable[[dict[str, Any]], str | None]:
    """Why an architecture cannot be built for the task, or None (always None without a task)."""

    def validate(architecture: dict[str, Any]) -> str | None:
        if task is None:
            return None
        try:
            build_model(space.family, architecture, task.input_shape, task.num_outputs)
        except InvalidArchitecture as exc:
            return str(exc)
        return None

    return validate


def _check_supervised_children(key: str, space, task, refusal: str) -> None:
    """Setting `key` needs children trained by a supervised trainer: a task (not an objective)
    and a family without a trainer of its own; ``refusal`` ends the error about such a one."""
    if task is None:
        raise ConfigError(f"{key}: an objective scores architectures without training them")
    if family_trainer(space.family):
        raise ConfigError(f"{key}: the {space.family} family's trainer {refusal}")


def _check_augment(config: SearchConfig, space, task) -> None:
    """`config.augment` is none, or the children are trained supervised on a sequence
    classification task."""
    if config.augment == "none":
        return
    _check_supervised_children("augment", space, task, "does not augment")
    try:
        check_augmentable(task, config.augment.split(","))
    except ValueError as exc:
        raise ConfigError(f"augment: {exc}") from None


def _check_lr_schedule(config: SearchConfig, space, task) -> None:
    """`config.lr_schedule` is constant, or the children's trainer follows a schedule."""
    if config.lr_schedule != "constant":
        _check_supervised_children("lr_schedule", space, task, "keeps its learning rate constant")


def _included(config: SearchConfig, space, validate) -> list[dict[str, Any]]:
    """`config.include`'s architectures, each a member of the space and buildable."""
    out = []
    for number, architecture in enumerate(config.included_architectures(), start=1):
        where = f"include: architecture {number}"
        try:
            architecture = space.decode(space.encode(architecture))
        except SpaceError as exc:
            raise ConfigError(f"{where} is not in space {space.name!r}: {exc}") from None
        reason = validate(architecture)
        if reason is not None:
            raise ConfigError(f"{where} cannot be built: {reason}")
        out.append(architecture)
    return out


def _tuner(config: SearchConfig, searcher, concurrency: int, callbacks: list, run_name: str):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    trainable = evaluate_child if config.objective is not None else train_child
    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
    return tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=concurrency),
            num_samples=config.budget + config.confirm * config.confirm_runs,
            metric="reward",
            mode="max",
            reuse_actors=True,  # one worker process per slot: no torch import per child
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=config.resolved_storage,
            callbacks=callbacks,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )


def run_search(config: SearchConfig, stream=None) -> SearchResult:
    """Run an architecture search end to end and register the best child's model.

    Args:
        config: The search's settings.
        stream: Where progress lines go (default stdout; nothing when ``config.quiet``).

    Returns:
        The leaderboard, the best child and where everything is tracked.
    """
    started = time.monotonic()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # Tune's own advice on interruption (Tuner.restore, missing result files) does not apply
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    # Our own progress lines and MLflow replace Tune's console tables and result files.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

    # Everything a user can get wrong is checked before Ray starts or MLflow is written.
    custom = config.objective is not None
    space = load_space(config.space, check_family=not custom)
    task = None if custom else load_task(config.task, seed=config.seed)
    reward_of = RewardExpression(config.reward) if config.reward else default_reward
    if custom:
        load_objective(config.objective)
    _check_augment(config, space, task)
    _check_lr_schedule(config, space, task)
    validate = _validator(space, task)
    include = _included(config, space, validate)
    try:
        controller = make_controller(
            config.controller, space, seed=config.seed, **config.controller_options
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"controller: {exc}") from None
    out = io.StringIO() if config.quiet else (stream or sys.stdout)
    started_ray = _ray_init(config)
    try:
        concurrency = _concurrency(config)
    except BaseException:
        if started_ray:
            ray.shutdown()
        raise

    log = SearchLog(budget=config.budget + config.confirm * config.confirm_runs)
    tracker = Tracker(config.resolved_tracking_uri, config.name)
    parent = tracker.start_parent(
        config.to_dict(), space.text, run_name=f"search-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    setup = {
        "task": config.task,
        "data_seed": config.seed,
        "family": space.family,
        "space": space.name,
        "space_text": space.text,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "lr_schedule": config.lr_schedule,
        "augment": config.augment,
        "objective": config.objective,
        "cwd": os.getcwd(),
        "reward_expression": config.reward,
        "cache_dir": config.resolved_cache,
    }
    children = ChildRunCallback(tracker, log, controller, reward_of=reward_of, key_of=space.key)
    searcher = ControllerSearcher(
        controller,
        setup,
        validate,
        key_of=space.key,
        on_invalid=lambda c, reason: log.invalid.append(
            {"candidate_id": c.id, "architecture": c.architecture, "reason": reason}
        ),
        on_reuse=children.log_reused,
        reward_of=reward_of,
        duplicates=config.duplicates,
        seed=config.seed,
        include=include,
        budget=config.budget,
        confirm=config.confirm,
        confirm_runs=config.confirm_runs,
    )
    what = f"objective {config.to_dict()['objective']}" if custom else config.task
    each = "" if custom else f", {config.epochs} epochs each"
    then = (
        f"; then the {config.confirm} best retrained {config.confirm_runs} more times each"
        if config.confirm
        else ""
    )
    print(
        f"rlnas: searching {space.name} ({space.cardinality():,} architectures) on {what} with "
        f"{config.controller}: {config.budget} children, {concurrency} at a time{each}{then}",
        file=out,
        flush=True,
    )
    status, interrupted = "FAILED", False
    try:
        tuner = _tuner(
            config,
            searcher,
            concurrency,
            [children, ProgressCallback(log, out)],
            run_name=f"{config.name}-{parent[:8]}",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuner.fit()
        # Tune ends the run quietly on Ctrl-C: a budget left unspent means an interruption
        ended = log.count("finished") + log.count("failed")
        interrupted = ended < searcher.planned and not searcher.exhausted
        log.budget = searcher.planned
        status = "KILLED" if interrupted else "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        board = log.leaderboard()
        version, kept = _finish(tracker, log, board, controller, status, task, space, config.keep)
        if started_ray:
            ray.shutdown()
    best = log.best
    return SearchResult(
        name=config.name,
        tracking_uri=tracker.tracking_uri,
        experiment_id=tracker.experiment_id,
        parent_run_id=parent,
        leaderboard=board,
        best_run_id=best.run_id if best else None,
        best_reward=best.reward if best else None,
        model_version=version,
        seconds=time.monotonic() - started,
        failed=log.count("failed"),
        invalid=len(log.invalid),
        reused=len(log.reused),
        interrupted=interrupted,
        kept=kept,
    )


def _finish(
    tracker: Tracker,
    log: SearchLog,
    board: pd.DataFrame,
    controller,
    status: str,
    task,
    space,
    keep: str,
) -> tuple[int | None, dict[str, Any] | None]:
    """Leaderboard, plots and controller state into the parent run; register the best (after
    confirmation, its trainings as one model, see `_combine_best`)."""
    for record in log.children.values():  # children cut off by an interrupt
        if record.status == "running" and record.run_id:
            tracker.client.set_terminated(record.run_id, "KILLED")

    def save_controller(path: Path) -> None:
        torch.save(controller.state_dict(), path)

    files: dict[str, Any] = {
        "leaderboard.csv": board.to_csv(index=False),
        "controller.pt": save_controller,
        "invalid.jsonl": "".join(json.dumps(i) + "\n" for i in log.invalid),
        "reused.jsonl": "".join(json.dumps(r) + "\n" for r in log.reused),
    }
    if not board.empty:
        files["rewards.png"] = lambda path: _plot_rewards(log, path)
    tracker.log_parent_artifacts(files)
    version, kept = None, None
    best = log.best
    if best is not None and best.run_id and best.has_model:
        try:
            kept = _combine_best(tracker, log, board, best, task, space, keep)
        except Exception as exc:  # the best single training is still a good model to keep
            warnings.warn(
                f"kept the best training alone: combining trainings failed: {exc}",
                stacklevel=1,
            )
        test = best.metrics.get(best.test_metric)
        if kept is None:
            version = tracker.register_best(best)
        else:
            version = tracker.register_best(
                best, tracker.parent_run_id, kept["trainings"], kept["architectures"]
            )
            test = kept["metrics"].get(best.test_metric, test)
        tracker.client.set_tag(tracker.parent_run_id, "rlnas.best_run_id", best.run_id)
        metrics = {"search_seconds": log.elapsed, f"best_{best.test_metric}": test}
        alone = (kept or {}).get("best_architecture_metrics") or {}
        if best.test_metric in alone:
            metrics[f"best_architecture_{best.test_metric}"] = alone[best.test_metric]
        tracker.log_parent(metrics, step=0)
    tracker.end_parent(status)
    return version, kept


def _combine_best(
    tracker: Tracker, log: SearchLog, board: pd.DataFrame, best, task, space, keep: str
) -> dict[str, Any] | None:
    """When there are several trainings to keep (after ``--confirm``; `keep` says whose, see
    `SearchConfig.keep`), write all their networks as one ensemble into the parent run's
    ``model/`` and return what `SearchResult.kept` holds; else None. Evaluated on the test
    split, as a child is; with several architectures, the best one's trainings are evaluated
    alone too (``best_architecture_metrics``). `board`: `log`'s leaderboard."""
    numbers = {c.number: c for c in log.finished if c.has_model and c.run_id}
    ranked = [numbers[n] for n in board["child"] if n in numbers]
    kept_architectures = [best.architecture]
    for c in ranked if keep == "confirmed" else []:
        if c.confirmation and c.architecture not in kept_architectures:
            kept_architectures.append(c.architecture)
    # best architecture first, then the others in leaderboard order
    trainings = [
        c for architecture in kept_architectures for c in ranked if c.architecture == architecture
    ]
    if task is None or len(trainings) < 2:
        return None
    trainer = get_trainer(family_trainer(space.family) or task.kind)
    combine = getattr(trainer, "ensemble_combine", "")
    if not combine:
        return None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    kept: dict[str, Any] = {"trainings": len(trainings)}
    with tempfile.TemporaryDirectory() as tmp:
        sources = [
            download_artifacts(
                artifact_uri=f"{tracker.client.get_run(c.run_id).info.artifact_uri}/model",
                dst_path=str(Path(tmp, str(c.number))),
                tracking_uri=tracker.tracking_uri,
            )
            for c in trainings
        ]
        path, model = combine_model_dirs(sources, Path(tmp, "model"), combine)
        kept.update(
            architectures=len(kept_architectures),
            networks=len(model.members),
            metrics=evaluate_on_test(trainer, model, task),
            best_architecture_metrics=None,
        )
        if (
            len(kept_architectures) > 1
            and [c.architecture for c in trainings[:2]] == [best.architecture] * 2
        ):  # the best architecture's networks come first: members.json's first group
            own = json.loads((path / "members.json").read_text())[0]["members"]
            alone = Ensemble(list(model.members[:own]), combine).eval()
            kept["best_architecture_metrics"] = evaluate_on_test(trainer, alone, task)
        tracker.client.log_artifacts(tracker.parent_run_id, str(path), "model")
    tracker.client.set_tag(tracker.parent_run_id, "rlnas.best_trainings", str(len(trainings)))
    tracker.client.set_tag(
        tracker.parent_run_id, "rlnas.best_architectures", str(len(kept_architectures))
    )
    return kept


def _plot_rewards(log: SearchLog, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finished = sorted(log.finished, key=lambda c: c.number)
    rewards = [c.reward or 0.0 for c in finished]
    best = [max(rewards[: i + 1]) for i in range(len(rewards))]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([c.number for c in finished], rewards, "o", alpha=0.6, label="child reward")
    ax.plot([c.number for c in finished], best, "-", label="best so far")
    ax.set_xlabel("child")
    ax.set_ylabel("reward")
    ax.set_title(f"{log.budget} children in {format_seconds(log.elapsed)}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
