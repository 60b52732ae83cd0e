"""What a resume may change: where and how a search runs, and a larger budget only."""

from __future__ import annotations

import pytest

from search.config import ConfigError, SearchConfig
from search.resume import Resume, merged_config


def resume(confirmation_queue=None) -> Resume:
    config = SearchConfig(space="mlp", budget=10, confirm=1, name="toy").to_dict()
    chain = {"Confirmation": {"queue": confirmation_queue}}
    state = {"config": config, "searcher": {"chain": chain}, "log": {"children": [], "budget": 12}}
    return Resume("run1", "KILLED", state)


def test_where_it_runs_and_a_larger_budget_may_change():
    config = merged_config(resume(), {"budget": 20, "concurrency": 1, "child_timeout": 5.0})
    assert (config.budget, config.concurrency, config.child_timeout) == (20, 1, 5.0)
    assert config.space == "mlp" and config.name == "toy"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 3}, r"changed settings: epochs \(20 -> 3\)"),
        ({"budget": 4}, r"changed settings: budget \(10 -> 4\)"),
        ({"seed": 1, "lr": 0.1}, r"seed \(0 -> 1\), lr \(0.003 -> 0.1\)"),
    ],
)
def test_changes_to_what_is_searched_are_refused_by_name(overrides, message):
    with pytest.raises(ConfigError, match=message):
        merged_config(resume(), overrides)


def test_the_budget_cannot_grow_once_confirmation_runs_started():
    with pytest.raises(ConfigError, match="confirmation runs have started"):
        merged_config(resume(confirmation_queue=["key"]), {"budget": 20})
    assert merged_config(resume(confirmation_queue=["key"]), {"budget": 10}).budget == 10
