"""MLflow from the driver only: one parent run per search, a nested run per child.

Ray's own MLflowLoggerCallback writes flat, unnested runs from wherever it runs; SQLite takes
one writer well, so every write here happens in the driver process, through `MlflowClient`
with explicit run ids (no global active run).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.artifacts import download_artifacts
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from ray import tune

from search.config import sqlite_path
from search.mlflow_client import DEFAULT_OUTAGE_LIMIT, TrackingClient, check_tracking
from search.model_files import load_model_dir
from search.model_io import output_of
from search.pyfunc import log_pyfunc
from search.records import (
    DEFAULT_TEST_METRIC,
    ChildRecord,
    SearchLog,
    child_run_name,
    flatten_architecture,
)
from search.tags import (
    ARCHITECTURE_TAG,
    CANDIDATE_ID_TAG,
    CONFIRMATION_TAG,
    EXPERIMENT_KIND_TAG,
    FAILURE_TAG,
    INCLUDED_TAG,
    PARENT_RUN_TAG,
    RESUMED_TAG,
    REUSED_FROM_TAG,
    ROLE_TAG,
    RUNS_VIEW_STATE,
    RUNS_VIEW_TAG,
    SPACE_TAG,
    STATUS_TAG,
    STOPPED_EPOCH_TAG,
    TEST_METRIC_TAG,
    TRAINS_AGAIN_TAG,
    TRIAL_ID_TAG,
)

if TYPE_CHECKING:
    from search.searcher import ControllerSearcher

__all__ = [
    "ChildRunCallback",
    "Tracker",
    "local_artifact_root",
    "mlflow_metrics",
    "mlflow_params",
]

EXPERIMENT_KIND = "custom_model_development"  # MLflow 3's UI then opens the runs table
ARCHITECTURE_TAG_LENGTH = 7900
"""Characters of an architecture's JSON kept in `ARCHITECTURE_TAG` (MLflow's limit is 8000)."""
FAILURE_TAG_LENGTH = 4000
"""Characters of a failure's one-line reason kept in `FAILURE_TAG`."""

# Keys Tune adds to every result, and our own bookkeeping: never logged as metrics.
NOT_METRICS = frozenset(
    {
        "done", "training_iteration", "trial_id", "experiment_id", "date", "timestamp",
        "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config",
        "time_since_restore", "iterations_since_restore", "timesteps_total", "episodes_total",
        "timesteps_since_restore", "checkpoint_dir_name", "should_checkpoint",
        "experiment_tag", "warmup_time", "final", "epoch", "invalid", "diverged",
    }
)  # fmt: skip


def reported_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numbers a child reported (a trainer's or an objective's), Tune's keys left out."""
    return {
        k: v
        for k, v in result.items()
        if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def local_artifact_root(tracking_uri: str, experiment: str | None = None) -> str | None:
    """For a SQLite store, artifacts go beside the database: ``runs/artifacts/<experiment>``."""
    database = sqlite_path(tracking_uri)
    if database is None:
        return None
    root = database.parent / "artifacts"
    if experiment is not None:
        root = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
    return root.resolve().as_uri()


def mlflow_params(values: dict[str, Any]) -> list[Param]:
    """`values` as MLflow params (names and values cut to MLflow's limits)."""
    return [Param(str(k)[:250], str(v)[:6000]) for k, v in values.items()]


def mlflow_metrics(values: dict[str, Any], step: int = 0) -> list[Metric]:
    """The finite numbers among `values` as MLflow metrics at `step`, stamped now."""
    now = int(time.time() * 1000)
    out = []
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out.append(Metric(key, float(value), now, step))
    return out


class Tracker:
    """An experiment (a search's, or a bench's) and a search's parent run."""

    def __init__(self, tracking_uri: str, name: str, outage_limit: float = DEFAULT_OUTAGE_LIMIT):
        """`ConfigError` at once if `tracking_uri` is a server that does not answer; later
        outages of up to `outage_limit` seconds are ridden out (see `TrackingClient`)."""
        self.tracking_uri = tracking_uri
        self.name = name
        database = sqlite_path(tracking_uri)
        if database is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
        check_tracking(tracking_uri)
        self.client = TrackingClient(tracking_uri, outage_limit=outage_limit, search_name=name)
        try:
            self.experiment_id = self._experiment()
        except BaseException:
            self.client.close()
            raise
        self.parent_run_id = ""  # set by start_parent or resume_parent

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for the queued MLflow writes; False if `timeout` seconds passed first."""
        return self.client.flush(timeout)

    def close(self) -> None:
        """Perform the queued MLflow writes, then stop the writer (later writes are direct)."""
        self.client.close()

    def _experiment(self) -> str:
        experiment = self.client.get_experiment_by_name(self.name)
        if experiment is None:
            experiment_id = self.client.create_experiment(
                self.name,
                artifact_location=local_artifact_root(self.tracking_uri, self.name),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, RUNS_VIEW_TAG: RUNS_VIEW_STATE},
            )
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment_id)
            self.client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            self.client.set_experiment_tag(experiment_id, RUNS_VIEW_TAG, RUNS_VIEW_STATE)
        return experiment_id

    def start_parent(
        self,
        config: dict[str, Any],
        space_text: str,
        run_name: str,
        tags: dict[str, str] | None = None,
    ) -> str:
        """A new search's parent run, with its config, space and any other `tags`."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={ROLE_TAG: "search", SPACE_TAG: str(config.get("space")), **(tags or {})},
        )
        self.parent_run_id = run.info.run_id
        self.client.log_batch(self.parent_run_id, params=mlflow_params(config))
        self.client.log_text(self.parent_run_id, space_text, "space.yaml")
        self.client.log_dict(self.parent_run_id, config, "config.json")
        return self.parent_run_id

    def resume_parent(self, run_id: str) -> str:
        """Go on with an earlier search's parent run (``RUNNING`` again)."""
        self.parent_run_id = run_id
        self.client.update_run(run_id, status="RUNNING")
        self.client.set_tag(run_id, RESUMED_TAG, str(int(time.time())))
        return run_id

    def after_writes(self, fn) -> None:
        """Run `fn` once every write queued so far is done (on the writer thread)."""
        self.client.after_writes(fn)

    def log_parent(self, metrics: dict[str, Any], step: int) -> None:
        self.client.log_batch(self.parent_run_id, metrics=mlflow_metrics(metrics, step))

    def log_parent_artifacts(self, files: dict[str, Any]) -> None:
        """Write `files` (name -> text, bytes or a writer callable) into the parent run."""
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in files.items():
                path = Path(tmp) / name
                if callable(content):
                    content(path)
                elif isinstance(content, bytes):
                    path.write_bytes(content)
                else:
                    path.write_text(content)
            self.client.log_artifacts(self.parent_run_id, tmp)

    def end_parent(self, status: str = "FINISHED") -> None:
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status)

    def register_best(
        self,
        record: ChildRecord,
        task_kind: str,
        source_run_id: str | None = None,
        trainings: int = 1,
        architectures: int = 1,
    ) -> int:
        """Register the child's model under the search's name; move alias `best` if it wins.

        The version's source is an MLflow model (`search.pyfunc`) of the run's ``model/``,
        predicting as a model of a `task_kind` task does (`search.model_io.output_of`).
        `source_run_id`: the run whose ``model/`` is registered instead of the child's (the
        parent's, holding `trainings` trainings of `architectures` architectures as one
        model). Returns the new model version.
        """
        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            self.client.create_registered_model(
                self.name, description="Best architectures found by rlnas searches."
            )
        run_id = source_run_id or record.run_id
        run = self.client.get_run(run_id)
        source, model_id = self._mlflow_model(run, task_kind)
        version = self.client.create_model_version(
            self.name,
            source=source,
            run_id=run_id,
            model_id=model_id,
            tags={
                "reward": str(record.reward),
                "parent_run_id": str(self.parent_run_id),
                "trainings": str(trainings),
                "architectures": str(architectures),
            },
        )
        if self._beats_current_best(record.reward):
            self.client.set_registered_model_alias(self.name, "best", version.version)
        return int(version.version)

    def _mlflow_model(self, run, task_kind: str) -> tuple[str, str | None]:
        """The source of a run's ``model/`` as a registered version, and its logged model's id:
        an MLflow model's files, or (if writing one fails, with a warning) the directory.

        The source is the files' location, not ``models:/<id>``: MLflow's SQL registry would
        look that id up in the default tracking store, not this one."""
        model_dir = f"{run.info.artifact_uri}/model"
        self.flush()  # the run's model/ may still be queued
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = download_artifacts(
                    artifact_uri=model_dir, dst_path=tmp, tracking_uri=self.tracking_uri
                )
                output = output_of(load_model_dir(path), task_kind)
                return log_pyfunc(
                    self.client, self.experiment_id, run.info.run_id, self.name, path, output
                )
        except (MlflowException, OSError, ValueError, RuntimeError) as exc:
            warnings.warn(f"registered {model_dir} without an MLflow model: {exc}", stacklevel=2)
            return model_dir, None

    def _beats_current_best(self, reward: float | None) -> bool:
        if reward is None:
            return True
        try:
            current = self.client.get_model_version_by_alias(self.name, "best")
        except MlflowException:
            return True
        try:
            return float(reward) >= float(current.tags.get("reward", "-inf"))
        except (TypeError, ValueError):
            return True


class ChildRunCallback(tune.Callback):
    """Tune callback on the driver: a nested MLflow run per trial, and the search log."""

    def __init__(
        self, tracker: Tracker, log: SearchLog, controller=None, reward_of=None, key_of=None
    ):
        self.tracker = tracker
        self.client = tracker.client
        self.log = log
        self.controller = controller
        self.reward_of = reward_of or (lambda result: result.get("reward"))
        self.key_of = key_of or (lambda architecture: json.dumps(architecture, sort_keys=True))
        self.searcher: ControllerSearcher | None = None  # once built: why trials ended
        # Saves the search's state (see `search.state.StateFile`); called once a child's end
        # is recorded and before its run is ended, so every ended run is one the state knows.
        self.save_state: Callable[[], None] = lambda: None

    def log_reused(self, candidate, key: str, reward: float | None) -> None:
        """A proposal answered from an earlier child's result: a nested run marked as such."""
        original = self.log.by_key.get(key)
        self.log.reused.append({"candidate_id": candidate.id, "key": key, "reward": reward})
        tags = {
            PARENT_RUN_TAG: self.tracker.parent_run_id,
            ROLE_TAG: "reused",
            STATUS_TAG: "reused",
            CANDIDATE_ID_TAG: str(candidate.id),
            REUSED_FROM_TAG: original.run_id if original and original.run_id else "",
            ARCHITECTURE_TAG: json.dumps(candidate.architecture)[:ARCHITECTURE_TAG_LENGTH],
        }
        run = self.client.create_run(
            self.tracker.experiment_id, run_name=f"reuse-{len(self.log.reused):03d}", tags=tags
        )
        self.client.log_batch(
            run.info.run_id,
            metrics=mlflow_metrics({} if reward is None else {"reward": reward}),
            params=mlflow_params(flatten_architecture(candidate.architecture)),
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")

    def on_trial_start(self, iteration, trials, trial, **info):
        config = trial.config
        record = self.log.add(
            trial.trial_id,
            config["candidate_id"],
            config["architecture"],
            replaces=config.get("trains_again"),
        )
        self.log.by_key.setdefault(self.key_of(config["architecture"]), record)
        run = self.client.create_run(
            self.tracker.experiment_id,
            run_name=child_run_name(record.number),
            tags={
                PARENT_RUN_TAG: self.tracker.parent_run_id,
                ROLE_TAG: "child",
                TRIAL_ID_TAG: trial.trial_id,
                CANDIDATE_ID_TAG: str(config["candidate_id"]),
                ARCHITECTURE_TAG: json.dumps(config["architecture"])[:ARCHITECTURE_TAG_LENGTH],
                **({INCLUDED_TAG: "true"} if config.get("included") else {}),
                **({CONFIRMATION_TAG: "true"} if config.get("confirmation") else {}),
                **({TRAINS_AGAIN_TAG: config["trains_again"]} if "trains_again" in config else {}),
            },
        )
        record.run_id = run.info.run_id
        record.included = bool(config.get("included"))
        record.confirmation = bool(config.get("confirmation"))
        params = flatten_architecture(config["architecture"])
        params["train_seed"] = config["train_seed"]
        self.client.log_batch(record.run_id, params=mlflow_params(params))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        record = self.log.children.get(trial.trial_id)
        if record is None or result.get("final"):
            return
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        values = reported_metrics(result)
        values.pop("reward", None)  # the best so far; the child's reward is logged at the end
        record.epoch_metrics.update(values)
        self.client.log_batch(record.run_id, metrics=mlflow_metrics(values, epoch))

    def on_trial_complete(self, iteration, trials, trial, **info):
        record = self.log.children.get(trial.trial_id)
        if record is None:
            self.save_state()
            return
        result = trial.last_result or {}
        stopped = self.searcher.stopped_early.get(trial.trial_id) if self.searcher else None
        if stopped is not None:
            self._stopped(record, result, *stopped)
            return
        if result.get("error") or result.get("diverged"):
            reason = str(result.get("error") or result.get("failure") or "diverged")
            self._failed(record, reason, result.get("traceback"))
            return
        reward = self.reward_of(result)
        if reward is None or not math.isfinite(float(reward)):
            self._failed(record, f"its reward is {reward}, not a finite number", None)
            return
        record.metrics = reported_metrics(result)
        record.reward = reward
        record.metrics["reward"] = reward
        record.status = "finished"
        record.test_metric = str(result.get("test_metric") or DEFAULT_TEST_METRIC)
        record.failure = str(result.get("failure") or "")
        tags = [
            RunTag(STATUS_TAG, "finished"),
            RunTag(TEST_METRIC_TAG, record.test_metric),
        ]
        if record.failure:
            tags.append(RunTag(FAILURE_TAG, record.failure[:FAILURE_TAG_LENGTH]))
        self.client.log_batch(
            record.run_id,
            metrics=mlflow_metrics(  # the best epoch's values already lie in the per-epoch series
                {k: v for k, v in record.metrics.items() if k not in record.epoch_metrics},
                int(result.get("best_epoch", 0)),
            ),
            tags=tags,
        )
        self.client.log_text(
            record.run_id, json.dumps(record.architecture, indent=2), "architecture.json"
        )
        checkpoint = trial.checkpoint
        if checkpoint is not None:
            with checkpoint.as_directory() as path:
                for entry in sorted(Path(path).iterdir()):  # model/, samples/, ...
                    if entry.is_dir():
                        self.client.log_artifacts(record.run_id, str(entry), entry.name)
                    else:
                        self.client.log_artifact(record.run_id, str(entry))
                record.has_model = Path(path, "model").is_dir()
        self.save_state()
        self.client.set_terminated(record.run_id, "FINISHED")
        self._log_parent_progress(record)

    def _stopped(
        self, record: ChildRecord, result: dict[str, Any], epoch: int, estimate: float
    ) -> None:
        """A scheduler stopped the child at `epoch`: the controller was told `estimate`. Its
        ``train_seconds`` are Tune's time from the child's start to its last report."""
        record.status, record.stopped_epoch = "stopped", epoch
        record.reward = estimate
        record.metrics = {**reported_metrics(result), "reward": estimate}
        record.metrics.pop("final", None)
        ended = {"reward": estimate}
        if isinstance(result.get("time_total_s"), (int, float)):
            ended["train_seconds"] = record.metrics["train_seconds"] = float(result["time_total_s"])
        tags = [RunTag(STATUS_TAG, "stopped"), RunTag(STOPPED_EPOCH_TAG, str(epoch))]
        self.client.log_batch(record.run_id, metrics=mlflow_metrics(ended, epoch), tags=tags)
        self.client.log_text(
            record.run_id, json.dumps(record.architecture, indent=2), "architecture.json"
        )
        self.save_state()
        self.client.set_terminated(record.run_id, "FINISHED")
        self._log_parent_progress(record)

    def on_trial_error(self, iteration, trials, trial, **info):
        record = self.log.children.get(trial.trial_id)
        if record is None:
            self.save_state()
            return
        searcher = self.searcher
        reason = searcher.outcome(trial.trial_id, None, True).error if searcher else ""
        traceback = _error_text(trial)
        if searcher is not None and searcher.will_rerun(trial.trial_id):
            record.status, record.failure = "retried", reason
            self._end_failed_run(record, f"{reason}; trained again", traceback, "retried")
            return
        self._failed(record, reason or _last_line(traceback), traceback)

    def _failed(self, record: ChildRecord, reason: str, traceback: str | None) -> None:
        """The child failed: one line in `FAILURE_TAG`, the traceback in ``error.txt``."""
        record.status = "failed"
        record.error = record.failure = reason
        self._end_failed_run(record, reason, traceback, "failed")
        self._log_parent_progress(record)

    def _end_failed_run(
        self, record: ChildRecord, reason: str, traceback: str | None, status: str
    ) -> None:
        tags = [RunTag(STATUS_TAG, status), RunTag(FAILURE_TAG, reason[:FAILURE_TAG_LENGTH])]
        self.client.log_batch(record.run_id, tags=tags)
        if traceback:
            self.client.log_text(record.run_id, traceback, "error.txt")
        self.save_state()
        self.client.set_terminated(record.run_id, "FAILED")

    def _log_parent_progress(self, record: ChildRecord) -> None:
        done = sum(self.log.count(status) for status in ("finished", "stopped", "failed"))
        best = self.log.best
        metrics: dict[str, Any] = {
            "children_finished": self.log.count("finished"),
            "children_stopped": self.log.count("stopped"),
            "children_failed": self.log.count("failed"),
            "invalid_proposals": len(self.log.invalid),
        }
        if record.reward is not None:
            metrics["reward"] = record.reward
        if best is not None:
            metrics["best_reward"] = best.reward
        if self.controller is not None:
            metrics.update({f"controller.{k}": v for k, v in self.controller.stats().items()})
        self.tracker.log_parent(metrics, step=done)


def _error_text(trial) -> str:
    """The whole error Tune recorded for a trial (a traceback), or empty."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).exists():
        return Path(path).read_text().strip()
    return ""


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "unknown error"
