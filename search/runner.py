"""Run one search: controller + Ray Tune children + MLflow tracking."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import signal
import sys
import tempfile
import threading
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
from mlflow.tracking import MlflowClient
from ray import tune

from controller import make_controller
from search.buildable import BUILD_CHECK_DRAWS, Validator, draw_and_build, validator
from search.child_setup import ChildSetup
from search.child_timeout import ChildTimeout
from search.cluster import ClusterLost, ClusterWatch, connect, disconnect, exit_lost
from search.combined import combine_model_dirs, evaluate_on_test
from search.config import AUTO_SCHEDULER, ConfigError, SearchConfig, sqlite_path
from search.failures import reporting_failures
from search.mlflow_client import check_tracking, quiet_downloads
from search.objective import evaluate_child, load_objective, reports_epochs
from search.pictures import log_pictures
from search.progress import ProgressCallback
from search.records import SearchLog
from search.results import ResultsError, open_store
from search.resume import Resume, mark_cut_off, unfinished_search
from search.rewards import RewardExpression
from search.schedulers import RungScheduler, concrete_scheduler, make_scheduler, rung_epochs
from search.searcher import ATTEMPTS, ControllerSearcher, default_reward
from search.stages import Deduplication
from search.state import ARTIFACT_DIR, StateFile, state_path
from search.tags import BEST_ARCHITECTURES_TAG, BEST_RUN_ID_TAG, BEST_TRAININGS_TAG
from search.tracking import ChildRunCallback, Tracker
from search.trainable import train_child
from search.warm import CONTROLLER_FILE, WarmStart, load_warm_start
from spaces import SpaceError, load_space
from spaces.ensemble import Ensemble
from spaces.families import family_trainer
from trainers import Trainer, get_trainer, load_task
from trainers.augment import check_augmentable, parse_augmentations

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
    failure_stop: str = ""
    """Why a run of failures stopped the search (it can be resumed), or empty."""
    exhausted: str = ""
    """Why the search ended before its budget with nothing new to train (see `Deduplication`),
    or empty."""
    planned: int = 0
    """Trainings planned in all (the budget and any confirmation runs)."""
    stopped: int = 0
    """Children an early-stopping scheduler stopped (see `SearchConfig.scheduler`)."""

    @property
    def best(self) -> dict[str, Any] | None:
        return None if self.leaderboard.empty else self.leaderboard.iloc[0].to_dict()


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


def _check_buildable(config: SearchConfig, space, validate: Validator) -> None:
    """Refuse a space of which no architecture drawn at random can be built for the task (a
    space whose decisions are not the family's, say), before a search proposes them one after
    another; a space of which 1 architecture in 100 can be built passes 99 times in 100."""
    draws = draw_and_build(space, validate, BUILD_CHECK_DRAWS, config.seed, stop_at_first=True)
    if draws.built:
        return
    raise ConfigError(
        f"space {space.name!r}: none of {draws.drawn} architectures drawn at random from "
        f"it can be built by family {space.family!r} for task {config.task!r} (the most common "
        f"reason: {draws.common_reason}); fix the space, or --include an architecture that can "
        "be built"
    )


def _children_trainer(space, task) -> Trainer | None:
    """The trainer of the search's children: the family's own, else the task kind's (None
    when an objective scores them)."""
    if task is None:
        return None
    return get_trainer(family_trainer(space.family) or task.kind)


def _check_capability(key: str, space, task, capability: str, refusal: str) -> None:
    """Setting `key` needs children whose trainer declares `capability`; ``refusal`` ends the
    error about a trainer that does not."""
    trainer = _children_trainer(space, task)
    if trainer is None:
        raise ConfigError(f"{key}: an objective scores architectures without training them")
    if not getattr(trainer, capability):
        owner = f"{space.family} family's" if family_trainer(space.family) else trainer.kind
        raise ConfigError(f"{key}: the {owner} trainer {refusal}")


def _check_augment(config: SearchConfig, space, task) -> None:
    """`config.augment` is none, or the children's trainer augments this task's batches."""
    if config.augment == "none":
        return
    if task is not None and not family_trainer(space.family):
        try:  # the task's own refusal names what would be needed
            check_augmentable(task, config.augment.split(","))
        except ValueError as exc:
            raise ConfigError(f"augment: {exc}") from None
    _check_capability("augment", space, task, "supports_augment", "does not augment")


def _check_lr_schedule(config: SearchConfig, space, task) -> None:
    """`config.lr_schedule` is constant, or the children's trainer follows a schedule."""
    if config.lr_schedule != "constant":
        _check_capability(
            "lr_schedule", space, task, "supports_lr_schedule", "keeps its learning rate constant"
        )


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


def _tuner(
    config: SearchConfig,
    searcher,
    scheduler: RungScheduler | None,
    concurrency: int,
    callbacks: list,
    run_name: str,
):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    trainable = reporting_failures(evaluate_child if config.objective is not None else train_child)
    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
    return tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=concurrency),
            scheduler=scheduler,
            # an upper bound: the searcher says when the search is done (reruns come on top)
            num_samples=ATTEMPTS * (config.budget + config.confirm * config.confirm_runs),
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


@dataclass
class _Plan:
    """What a search is made of, every part checked before anything runs."""

    space: Any
    task: Any
    reward_of: Callable[[dict[str, Any]], float | None]
    validate: Validator
    include: list[dict[str, Any]]
    controller: Any


def _with_concrete_scheduler(config: SearchConfig) -> SearchConfig:
    """`config` with ``scheduler: auto`` replaced by what it stands for here, so that the
    search's records, saved state and resume see the scheduler it ran with."""
    if config.scheduler != AUTO_SCHEDULER:
        return config
    reports = config.objective is None or reports_epochs(load_objective(config.objective))
    name = concrete_scheduler(config.scheduler, config.epochs, config.grace_epochs, reports)
    return dataclasses.replace(config, scheduler=name)


def _plan(config: SearchConfig) -> _Plan:
    """Everything a user can get wrong, checked before Ray starts or MLflow is written."""
    custom = config.objective is not None
    space = load_space(config.space, check_family=not custom)
    task = None if custom else load_task(config.task, seed=config.seed)
    reward_of = RewardExpression(config.reward) if config.reward else default_reward
    if custom:
        objective = load_objective(config.objective)
        if config.scheduler != "fifo" and not reports_epochs(objective):
            raise ConfigError(
                f"scheduler: {config.scheduler} stops children by the rewards they report each "
                "epoch, and the objective reports none: give it a second argument, report, "
                "and call report({'reward': ...}) after each epoch"
            )
    _check_augment(config, space, task)
    _check_lr_schedule(config, space, task)
    validate = validator(space, task)
    include = _included(config, space, validate)
    if not include:
        _check_buildable(config, space, validate)
    try:
        controller = make_controller(
            config.controller, space, seed=config.seed, **config.controller_options
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"controller: {exc}") from None
    return _Plan(space, task, reward_of, validate, include, controller)


def _setup(config: SearchConfig, space) -> ChildSetup:
    """The static settings every child's config carries."""
    return ChildSetup(
        task=config.task,
        family=space.family,
        space=space.name,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        data_seed=config.seed,
        space_text=space.text,
        lr_schedule=config.lr_schedule,
        augment=parse_augmentations(config.augment),
        objective=config.objective,
        reward_expression=config.reward or "",
        cwd=os.getcwd(),
        cache_dir=config.resolved_cache,
    )


def _refuse_unfinished(config: SearchConfig) -> None:
    """A new search never mixes with an unfinished one of the same name."""
    try:
        _, client = open_store(config.resolved_tracking_uri)
    except ResultsError:
        return  # no store yet: nothing to mix with
    left = unfinished_search(client, config.resolved_name, config.resolved_storage)
    if left is not None:
        raise UnfinishedSearch(
            f"search {config.name!r} is unfinished ({left.progress}, run {left.run_id}, "
            f"{left.status}): resume it with `rlnas resume {config.name}`, or start a new one "
            "with --new (or another --name)"
        )


class UnfinishedSearch(ConfigError):
    """A new search was asked under the name of one that can still be resumed."""


def _header(
    config: SearchConfig,
    plan: _Plan,
    concurrency: int,
    resume: Resume | None,
    warm: WarmStart | None,
) -> str:
    custom = config.objective is not None
    what = f"objective {config.to_dict()['objective']}" if custom else config.task
    within = f" or {config.time_budget}, whichever comes first" if config.time_budget else ""
    each = "" if custom else f", {config.epochs} epochs each"
    if config.scheduler != "fifo":
        rungs = rung_epochs(config.epochs, config.grace_epochs, config.reduction_factor)
        at = ", ".join(map(str, rungs))
        each += f" ({config.scheduler} may stop a child at epoch {at})"
    then = (
        f"; then the {config.confirm} best retrained {config.confirm_runs} more times each"
        if config.confirm
        else ""
    )
    verb = f"resuming {resume.run_id[:8]} ({resume.progress}): " if resume else ""
    started = f", {warm.text}" if warm else ""
    if resume and config.warm_start:  # its own state goes on: no second warm start
        started = f", warm-started from {config.warm_start!r} when it began"
    return (
        f"rlnas: {verb}searching {plan.space.name} ({plan.space.cardinality():,} architectures) "
        f"on {what} with {config.controller}: {config.budget} children{within}, {concurrency} "
        f"at a time{each}{then}{started}"
    )


def _continue(
    resume: Resume, searcher: ControllerSearcher, log: SearchLog, tracker: Tracker, budget: int
) -> None:
    """Load a saved search into fresh objects: children cut off are marked and trained again;
    a larger `budget` than the saved one is granted."""
    searcher.load_state_dict(resume.state["searcher"])
    log.load_state_dict(resume.state["log"])
    outstanding = {trial_id for trial_id, _ in resume.state["searcher"]["outstanding"]}
    for trial_id, record in list(log.children.items()):
        if record.status in ("running", "retried") and trial_id not in outstanding:
            del log.children[trial_id]  # an attempt trained again under another trial id
    mark_cut_off(tracker.client, tracker.experiment_id, resume.run_id, log.ended)
    if budget > int(resume.config["budget"]):
        searcher.grow_budget(budget)


def _fit(tuner) -> None:
    """`tuner.fit()`, with SIGTERM ending the search as Ctrl-C does (the state is kept)."""
    previous = signal.getsignal(signal.SIGTERM)

    def graceful(signum, frame):
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune's own graceful stop

    try:
        signal.signal(signal.SIGTERM, graceful)
    except ValueError:  # not the main thread: no handlers there
        previous = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuner.fit()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_search(
    config: SearchConfig, stream=None, resume: Resume | None = None, new: bool = False
) -> SearchResult:
    """Run an architecture search end to end and register the best child's model.

    Args:
        config: The search's settings.
        stream: Where progress lines go (default stdout; nothing when ``config.quiet``).
        resume: A saved search to continue (see `search.resume.load_resume`).
        new: Start a new search even when one of that name is unfinished.

    Returns:
        The leaderboard, the best child and where everything is tracked.
    """
    started = time.monotonic()
    _quiet_libraries()
    config = _with_concrete_scheduler(config)
    plan = _plan(config)
    out = io.StringIO() if config.quiet else (stream or sys.stdout)
    check_tracking(config.resolved_tracking_uri)  # an unreachable server: before Ray starts
    if resume is None and not new:
        _refuse_unfinished(config)
    # a resumed search's controller goes on from its own saved state (`_continue`)
    warm = load_warm_start(config, plan.controller) if config.warm_start and not resume else None
    started_ray, concurrency, tracker = _connect(config)
    parent = _open_parent(tracker, config, plan, resume, warm)
    log = SearchLog(budget=config.budget + config.confirm * config.confirm_runs)
    children = ChildRunCallback(
        tracker, log, plan.controller, reward_of=plan.reward_of, key_of=plan.space.key
    )
    searcher = _searcher(config, plan, log, children, concurrency)
    scheduler = make_scheduler(
        config.scheduler, config.epochs, config.grace_epochs, config.reduction_factor, config.seed
    )
    state = _state_file(config, parent, searcher, scheduler, log, tracker)
    if resume is not None:
        _continue(resume, searcher, log, tracker, config.budget)
        if scheduler is not None:
            scheduler.load_rungs(resume.state.get("scheduler", []))
    log.budget = searcher.planned
    searcher.on_change = children.save_state = state.save
    state.save(final=True)
    print(_header(config, plan, concurrency, resume, warm), file=out, flush=True)
    closing = threading.Lock()  # the records' last writes: by this thread, or by `stuck`
    closed: list[tuple[pd.DataFrame, int | None, dict[str, Any] | None]] = []

    def close(status: str) -> None:
        board = log.leaderboard()
        closed.append(
            (
                board,
                *_finish(
                    tracker, log, board, plan.controller, status, plan.task, plan.space, config.keep
                ),
            )
        )
        state.save(final=True)
        tracker.close()

    def stuck(lost: ClusterLost) -> None:
        """The cluster is gone while Tune waits on it: the records end here, then the process."""
        with closing:
            if closed:
                return
            try:
                close("KILLED")
            finally:
                exit_lost(lost)

    watch = ClusterWatch(tracker.name, on_stuck=stuck)
    callbacks = _callbacks(config, searcher, children, out, watch)
    status = "FAILED"
    try:
        _fit(
            _tuner(
                config,
                searcher,
                scheduler,
                concurrency,
                callbacks,
                run_name=f"{config.name}-{parent[:8]}",
            )
        )
        log.budget = searcher.planned
        status = _end_status(searcher)
    except (KeyboardInterrupt, ClusterLost):
        status = "KILLED"  # resumable: `rlnas resume NAME`
        raise
    finally:
        try:
            watch.close()
            with closing:
                close(status)
        finally:  # even when the tracking store is gone (TrackingError): Ray stops
            disconnect(started_ray)
    board, version, kept = closed[0]
    return _result(config, tracker, log, board, searcher, version, kept, status, started)


def _quiet_libraries() -> None:
    """Our own progress lines and MLflow replace Tune's and MLflow's console output."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    # Tune's own advice on interruption (Tuner.restore, missing result files) does not apply
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    # Tune's console tables and result files
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    quiet_downloads()  # MLflow's progress bars (the kept models are downloaded at the end)


def _connect(config: SearchConfig) -> tuple[bool, int, Tracker]:
    """Ray (started here, or joined), the children at once, and the tracker. A new SQLite
    store gets its schema on a thread while Ray starts (MLflow's migrations take seconds, as
    does Ray); the search's records start only once Ray is up."""
    schema = _make_schema(config.resolved_tracking_uri)
    started_ray = connect(config.address)
    try:
        concurrency = _concurrency(config)
        schema.join()  # bounded: one SQLite file's migrations
        tracker = Tracker(
            config.resolved_tracking_uri,
            config.resolved_name,
            outage_limit=config.tracking_outage,
        )
        return started_ray, concurrency, tracker
    except BaseException:
        disconnect(started_ray)
        raise


def _make_schema(tracking_uri: str) -> threading.Thread:
    """A started daemon thread that makes a new SQLite store's schema (it does nothing for an
    existing store or a server); errors are left to the `Tracker` that opens it after."""

    database = sqlite_path(tracking_uri)

    def make() -> None:
        if database is None or database.exists():
            return
        with contextlib.suppress(Exception):
            database.parent.mkdir(parents=True, exist_ok=True)
            MlflowClient(tracking_uri).search_experiments(max_results=1)

    thread = threading.Thread(target=make, name="rlnas-schema", daemon=True)
    thread.start()
    return thread


def _open_parent(
    tracker: Tracker,
    config: SearchConfig,
    plan: _Plan,
    resume: Resume | None,
    warm: WarmStart | None,
) -> str:
    """The search's parent run: the resumed search's, or a new one (tagged with its warm
    start)."""
    if resume is not None:
        return tracker.resume_parent(resume.run_id)
    return tracker.start_parent(
        config.to_dict(),
        plan.space.text,
        run_name=f"search-{time.strftime('%Y%m%d-%H%M%S')}",
        tags=warm.tags if warm else None,
    )


def _searcher(
    config: SearchConfig, plan: _Plan, log: SearchLog, children: ChildRunCallback, parallel: int
) -> ControllerSearcher:
    """The Tune searcher around the controller; `children` learns of it (why trials end)."""
    searcher = ControllerSearcher(
        plan.controller,
        _setup(config, plan.space),
        plan.validate,
        key_of=plan.space.key,
        on_invalid=lambda c, reason: log.invalid.append(
            {"candidate_id": c.id, "architecture": c.architecture, "reason": reason}
        ),
        on_reuse=children.log_reused,
        reward_of=plan.reward_of,
        duplicates=config.duplicates,
        space_size=plan.space.cardinality(),
        seed=config.seed,
        include=plan.include,
        budget=config.budget,
        time_budget=config.time_budget_seconds,
        clock=lambda: log.elapsed,  # the search's time, counted across resumes
        parallel=parallel,
        confirm=config.confirm,
        confirm_runs=config.confirm_runs,
        max_failures=config.max_failures,
    )
    children.searcher = searcher
    return searcher


def _state_file(
    config: SearchConfig,
    parent: str,
    searcher: ControllerSearcher,
    scheduler: RungScheduler | None,
    log: SearchLog,
    tracker: Tracker,
) -> StateFile:
    """The saved state a resume goes on from, also uploaded into the parent run."""
    return StateFile(
        state_path(config.resolved_storage, parent),
        lambda: {
            "config": config.to_dict(),
            "parent_run_id": parent,
            "searcher": searcher.state_dict(),
            "scheduler": scheduler.rungs_state() if scheduler else [],
            "log": log.state_dict(),
        },
        defer=tracker.after_writes,
        upload=lambda path: tracker.client.log_artifact(parent, str(path), ARTIFACT_DIR),
    )


def _callbacks(
    config: SearchConfig,
    searcher: ControllerSearcher,
    children: ChildRunCallback,
    out,
    watch: ClusterWatch,
) -> list[tune.Callback]:
    """Tune's callbacks on the driver, in the order they hear of a trial."""
    callbacks: list[tune.Callback] = [
        watch,  # first: a child cut off by a lost cluster stays running (trained again on resume)
        children,  # saves the state once a child's end is recorded
        ProgressCallback(children.log, out, time_budget=config.time_budget_seconds),
    ]
    if config.child_timeout:
        callbacks.append(ChildTimeout(searcher, config.child_timeout))
    return callbacks


def _end_status(searcher: ControllerSearcher) -> str:
    """The parent run's status once Tune returned: FAILED after a run of failures, FINISHED
    when every child is done, else KILLED (Tune ends quietly on Ctrl-C and SIGTERM)."""
    if searcher.failure_stop:
        return "FAILED"
    if searcher.finished and not searcher.live and not searcher.rerun:
        return "FINISHED"
    return "KILLED"


def _exhausted(searcher: ControllerSearcher) -> str:
    """Why the search ended with nothing new to train, or empty."""
    if not searcher.exhausted:
        return ""
    dedup = searcher.chain.require(Deduplication)
    if dedup.space_spent():
        size = dedup.space_size
        return (
            f"every one of the space's {size:,} architectures has been trained (or cannot be "
            "built for the task)"
        )
    return (
        "the controller proposed only architectures it had proposed before, "
        f"{dedup.max_in_row} in a row"
    )


def _result(
    config: SearchConfig,
    tracker: Tracker,
    log: SearchLog,
    board: pd.DataFrame,
    searcher: ControllerSearcher,
    version: int | None,
    kept: dict[str, Any] | None,
    status: str,
    started: float,
) -> SearchResult:
    best = log.best
    return SearchResult(
        name=tracker.name,
        tracking_uri=tracker.tracking_uri,
        experiment_id=tracker.experiment_id,
        parent_run_id=tracker.parent_run_id,
        leaderboard=board,
        best_run_id=best.run_id if best else None,
        best_reward=best.reward if best else None,
        model_version=version,
        seconds=time.monotonic() - started,
        failed=log.count("failed"),
        invalid=len(log.invalid),
        reused=len(log.reused),
        interrupted=status == "KILLED",
        kept=kept,
        failure_stop=searcher.failure_stop,
        exhausted=_exhausted(searcher),
        planned=log.budget,
        stopped=log.count("stopped"),
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
    """Leaderboard and controller state into the parent run; register the best (after
    confirmation, its trainings as one model, see `_combine_best`); then the pictures."""
    mark_cut_off(tracker.client, tracker.experiment_id, tracker.parent_run_id, log.ended)

    def save_controller(path: Path) -> None:
        torch.save(controller.state_dict(), path)

    files: dict[str, Any] = {
        "leaderboard.csv": board.to_csv(index=False),
        CONTROLLER_FILE: save_controller,
        "invalid.jsonl": "".join(json.dumps(i) + "\n" for i in log.invalid),
        "reused.jsonl": "".join(json.dumps(r) + "\n" for r in log.reused),
    }
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
            version = tracker.register_best(best, task.kind)
        else:
            version = tracker.register_best(
                best, task.kind, tracker.parent_run_id, kept["trainings"], kept["architectures"]
            )
            test = kept["metrics"].get(best.test_metric, test)
        tracker.client.set_tag(tracker.parent_run_id, BEST_RUN_ID_TAG, best.run_id)
        metrics = {"search_seconds": log.elapsed, f"best_{best.test_metric}": test}
        alone = (kept or {}).get("best_architecture_metrics") or {}
        if best.test_metric in alone:
            metrics[f"best_architecture_{best.test_metric}"] = alone[best.test_metric]
        tracker.log_parent(metrics, step=0)
    trainer = _children_trainer(space, task)  # pictures last: the model is registered first
    log_pictures(tracker, log, board, trainer.lower_is_better if trainer else ())
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
    trainer = _children_trainer(space, task)
    if trainer is None or len(trainings) < 2 or not trainer.ensemble_combine:
        return None
    combine = trainer.ensemble_combine
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
    tracker.client.set_tag(tracker.parent_run_id, BEST_TRAININGS_TAG, str(len(trainings)))
    tracker.client.set_tag(
        tracker.parent_run_id, BEST_ARCHITECTURES_TAG, str(len(kept_architectures))
    )
    return kept
