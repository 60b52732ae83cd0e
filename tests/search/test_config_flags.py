"""The settings flags of `rlnas search` and `rlnas resume`, generated from `SearchConfig`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from search.cli import UsageError, build_parser
from search.config import LR_SCHEDULES, ConfigError, SearchConfig
from search.config_flags import (
    describe,
    file_only_fields,
    flag_fields,
    flag_name,
    given_settings,
)

FIELDS = {f.name: f for f in dataclasses.fields(SearchConfig)}
STRINGS = {
    "task": "waves",
    "space": "mlp",
    "controller": "random",
    "warm_start": "digits-cnn",
    "augment": "scale",
    "name": "toy-search",
    "objective": "toyobj:score",
    "reward": "val_accuracy",
    "include": "@INCLUDE@",
    "tracking_uri": "sqlite:///elsewhere.db",
    "address": "auto",
    "storage": "/tmp/ray-elsewhere",
    "time_budget": "1h30m",
}
"""A valid value, not the default, of each string setting."""


def sample(name: str, include: Path) -> Any:
    """A valid value of setting `name` other than its default."""
    field = FIELDS[name]
    if "choices" in field.metadata:
        return field.metadata["choices"][-1]
    if field.type == "bool":
        return True
    if field.type in ("int", "float"):
        return field.default + 1
    return STRINGS[name].replace("@INCLUDE@", str(include))


def actions(command: str) -> dict[str, argparse.Action]:
    """The actions of `rlnas COMMAND` by destination."""
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices[command]._actions}


def parse(*argv: str) -> dict[str, Any]:
    return given_settings(build_parser().parse_args(list(argv)))


@pytest.fixture
def include(tmp_path: Path) -> Path:
    path = tmp_path / "include.yaml"
    path.write_text("{width: 16}\n")
    return path


def test_every_setting_is_a_flag_or_declared_file_only():
    options = {dest: a.option_strings for dest, a in actions("search").items()}
    file_only = {f.name for f in file_only_fields()}
    assert file_only == {"controller_options"}
    for name in FIELDS:
        assert (name in file_only) != (name in options), name
        if name in options:
            assert options[name] == [flag_name(name)]
    assert {f.name for f in flag_fields()} == set(FIELDS) - file_only


def test_resume_takes_the_name_as_its_argument_not_a_flag():
    assert parse("resume", "digits-cnn", "--budget", "60") == {"name": "digits-cnn", "budget": 60}
    with pytest.raises(UsageError, match="unrecognized arguments: --name"):
        build_parser().parse_args(["resume", "digits-cnn", "--name", "other"])


@pytest.mark.parametrize("name", [f.name for f in flag_fields()])
def test_a_flag_round_trips_into_the_config_and_wins_over_the_file_only_when_given(
    name, tmp_path, include
):
    value = sample(name, include)
    argv = [flag_name(name)] if value is True else [flag_name(name), str(value)]
    assert parse("search", *argv) == {name: value}
    assert type(parse("search", *argv)[name]) is type(value)
    if name != "name":
        assert parse("resume", "toy", *argv) == {"name": "toy", name: value}
    assert getattr(SearchConfig(**parse("search", *argv)), name) == value

    config_file = tmp_path / "search.yaml"
    config_file.write_text(yaml.safe_dump({name: value}))
    assert parse("search") == {}  # not given: nothing overrides the file
    assert getattr(SearchConfig.from_file(config_file, **parse("search")), name) == value
    if value is not True:  # given, even at its default, the flag wins
        default = FIELDS[name].default
        if default is not None:
            flags = parse("search", flag_name(name), str(default))
            assert getattr(SearchConfig.from_file(config_file, **flags), name) == default


@pytest.mark.parametrize("name", [f.name for f in flag_fields() if "choices" in f.metadata])
def test_settings_with_choices_refuse_others_as_flags_and_in_files(name):
    choices = FIELDS[name].metadata["choices"]
    with pytest.raises(UsageError, match="invalid choice: 'nosuch'"):
        build_parser().parse_args(["search", flag_name(name), "nosuch"])
    with pytest.raises(ConfigError, match=f"{name}: got 'nosuch', expected one of "):
        SearchConfig(**{name: "nosuch"})
    for choice in choices:
        assert getattr(SearchConfig(**{name: choice}), name) == choice


def test_the_learning_rate_schedules_are_those_the_supervised_trainers_implement():
    from trainers.options import LR_SCHEDULES as IMPLEMENTED

    assert LR_SCHEDULES == IMPLEMENTED


def test_help_is_the_first_paragraph_of_the_docstring_with_fields_as_flags():
    assert SearchConfig.field_docs()["budget"] == "Number of children to train."
    assert "\n\n" in SearchConfig.field_docs()["confirm"]
    assert describe("confirm") == (
        "After the budget, retrain this many of the best architectures (of those trained in "
        "full: an early-stopped child's reward is an estimate) and pick the best by mean "
        "reward; 0: none. A scheduler never stops a confirmation run."
    )
    assert "`--confirm-runs`" in describe("confirm", full=True, code=lambda s: f"`{s}`")
    helps = {dest: a.help for dest, a in actions("search").items()}
    assert helps["budget"] == "number of children to train (default 48)"
    assert helps["lr"] == "learning rate of each child's Adam optimiser (default 0.003)"
    assert helps["cpus_per_trial"] == "CPUs reserved for each child (default 1)"
    assert helps["quiet"] == "print no progress lines"
    assert helps["tracking_outage"].endswith("(default 600)")


def test_the_built_in_controllers_are_those_registered():
    from controller import get_controller, list_controllers
    from search.config import CONTROLLERS

    built_in = [
        n for n in list_controllers() if get_controller(n).__module__.startswith("controller.")
    ]
    assert list(CONTROLLERS) == built_in


@pytest.mark.parametrize("command", ["search", "resume"])
def test_help_names_every_built_in_controller_and_space(command, capsys):
    from search.config import CONTROLLERS
    from spaces import list_spaces

    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    controller_help = text.split("--controller CONTROLLER ")[-1].split("--warm-start", 1)[0]
    space_help = text.split("--space SPACE ")[-1].split("--controller", 1)[0]
    assert all(name in controller_help for name in CONTROLLERS)
    assert all(name in space_help for name in list_spaces())
