"""The MLflow tags rlnas writes and reads, each name written once.

A search's parent run has role ``search``; each child's run is nested under it (MLflow's
``mlflow.parentRunId``) with role ``child``, or ``reused`` when a proposal was answered from an
earlier child's result; a `rlnas bench` run has role ``bench``. Flags hold ``"true"``.
"""

from __future__ import annotations

__all__ = [
    "ARCHITECTURE_TAG",
    "BEST_ARCHITECTURES_TAG",
    "BEST_RUN_ID_TAG",
    "BEST_TRAININGS_TAG",
    "CANDIDATE_ID_TAG",
    "CONFIRMATION_TAG",
    "EXPERIMENT_KIND_TAG",
    "FAILURE_TAG",
    "INCLUDED_TAG",
    "KILLED_TAG",
    "PARENT_RUN_TAG",
    "RESUMED_TAG",
    "REUSED_FROM_TAG",
    "ROLE_TAG",
    "RUNS_VIEW",
    "RUNS_VIEW_STATE",
    "RUNS_VIEW_TAG",
    "SPACE_TAG",
    "STATUS_TAG",
    "STOPPED_EPOCH_TAG",
    "TEST_METRIC_TAG",
    "TRAINS_AGAIN_TAG",
    "TRIAL_ID_TAG",
    "WARM_START_CARRIED_TAG",
    "WARM_START_TAG",
    "tag_filter",
]

# MLflow's own
PARENT_RUN_TAG = "mlflow.parentRunId"
"""The run a child's run is nested under."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""An experiment's kind (MLflow 3's UI opens the runs table for ours)."""
RUNS_VIEW = "rlnas-runs"
"""The key of the MLflow UI view `RUNS_VIEW_TAG` holds (its ``viewStateShareKey``)."""
RUNS_VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW}"
"""A view of an experiment's runs table that the MLflow UI opens from a link: grouped by
`ROLE_TAG`, so every child is listed (nested under their parent run, the UI folds them)."""
RUNS_VIEW_STATE = (
    '{"groupBy": {"aggregateFunction": "average", '
    '"groupByKeys": [{"mode": "tag", "groupByData": "rlnas.role"}]}}'
)
"""`RUNS_VIEW_TAG`'s value: the MLflow UI's view state, as JSON."""

# every run
ROLE_TAG = "rlnas.role"
"""``search``, ``child``, ``reused`` or ``bench``."""

# a search's parent run
SPACE_TAG = "rlnas.space"
"""The searched space's name or file."""
RESUMED_TAG = "rlnas.resumed"
"""When the search was last resumed (Unix seconds)."""
BEST_RUN_ID_TAG = "rlnas.best_run_id"
"""The best child's run."""
BEST_TRAININGS_TAG = "rlnas.best_trainings"
"""Trainings the kept model averages (after confirmation runs)."""
BEST_ARCHITECTURES_TAG = "rlnas.best_architectures"
"""Architectures among those trainings."""
WARM_START_TAG = "rlnas.warm_start"
"""The parent run of the search whose controller this one's started from (``warm_start``)."""
WARM_START_CARRIED_TAG = "rlnas.warm_start_carried"
"""What that warm start carried over, in one line."""

# a child's run
STATUS_TAG = "rlnas.status"
"""``finished``, ``stopped`` (early, by ``--scheduler``), ``failed``, ``retried``, ``reused``
or ``killed``."""
STOPPED_EPOCH_TAG = "rlnas.stopped_epoch"
"""The epoch a child stopped early had reached."""
TRIAL_ID_TAG = "rlnas.trial_id"
"""Ray Tune's trial id."""
CANDIDATE_ID_TAG = "rlnas.candidate_id"
"""The controller's proposal id."""
ARCHITECTURE_TAG = "rlnas.architecture"
"""The architecture as JSON."""
INCLUDED_TAG = "rlnas.included"
"""Given by the search's ``include``, not proposed by the controller."""
CONFIRMATION_TAG = "rlnas.confirmation"
"""An extra training of one of the best architectures."""
TRAINS_AGAIN_TAG = "rlnas.trains_again"
"""The trial id of the earlier attempt this one trains again."""
TEST_METRIC_TAG = "rlnas.test_metric"
"""The test metric that sums the child up (``test_accuracy``, ``test_fd``)."""
FAILURE_TAG = "rlnas.failure"
"""Why training failed or ended early, in one line."""
REUSED_FROM_TAG = "rlnas.reused_from"
"""A reused proposal's original child run."""
KILLED_TAG = "rlnas.killed"
"""Why a child's run was cut off (it is trained again on resume)."""


def tag_filter(tag: str, value: str) -> str:
    """An MLflow ``filter_string`` clause: runs whose `tag` equals `value`."""
    return f"tags.`{tag}` = '{value}'"
