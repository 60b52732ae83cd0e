"""Test-wide settings and the toy space the controller and environment tests share."""

import os

import pytest

# Every Ray cluster the tests start lives on this machine alone: keep its traffic on loopback
# (Ray's own switch; read when Ray is first imported, so it is set before any test module).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# The suite runs on three workers (pyproject's addopts): each keeps torch to one thread, so they
# fight less over the 2 cores (small models gain nothing from a second thread).
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)

# A depth decision that can be 0, a per-layer `when` and a top-level `when`; slots of 2, 3 and
# 4 choices, so the padded action set needs masking.
TOY = {
    "name": "toy",
    "family": "rnn",
    "decisions": [
        {"name": "cell", "choices": ["rnn", "gru", "lstm"]},
        {
            "repeat": "layers",
            "count": [0, 1, 2, 3],
            "decisions": [
                {"name": "units", "choices": [0, 32, 64]},
                {"name": "activation", "choices": ["tanh", "relu"], "when": {"units": {"not": 0}}},
            ],
        },
        {"name": "head", "choices": ["none", 64], "when": {"cell": ["gru", "lstm"]}},
    ],
}


@pytest.fixture
def space():
    """The toy space, new for each test (a `Space` holds no state, but tests may not share)."""
    from spaces import Space

    return Space.from_dict(TOY, source="<toy>")


# The files that take longest (end-to-end searches), longest first, as measured on 2 cores.
# The workers take whole files in collection order (`--dist loadfile
# --no-loadscope-reorder`): starting with the long ones lets the short ones fill in at the end,
# so the workers finish together. A file missing here only runs later; nothing else depends on
# this order (each file sets up what it needs). The files that start Ray heads of their own run
# last of them: early in a run, such a head has been seen to ignore Ctrl-C.
LONGEST_FIRST = [
    "test_failures.py",
    "test_resume_e2e.py",
    "test_cli_searches.py",
    "test_ui_browser.py",
    "test_export.py",
    "test_tracking_faults.py",
    "test_schedulers.py",
    "test_confirmation_e2e.py",
    "test_time_budget.py",
    "test_sequence_search.py",
    "test_warm_start.py",
    "test_warm.py",
    "test_fuzz_inputs.py",
    "test_search_e2e.py",
    "test_mlflow_model.py",
    "test_concurrent_writes.py",
    "test_objective_e2e.py",
    "test_generative_search.py",
    "test_cluster.py",
    "test_cluster_lost.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the longest files first (see LONGEST_FIRST); the rest keep their order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
