"""`SearchConfig`: everything one search needs, from flags and/or a YAML file."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import numbers
import os
import re
import reprlib
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from spaces import list_spaces
from spaces.yaml_files import YamlFileError, parse_yaml, read_text, read_yaml, shorten

__all__ = [
    "AUTO_SCHEDULER",
    "CONTROLLERS",
    "DUPLICATES",
    "KEEP",
    "LR_SCHEDULES",
    "SCHEDULERS",
    "ConfigError",
    "SearchConfig",
    "default_tracking_uri",
    "sqlite_path",
]

RUNS_DIR = Path("runs")
LR_SCHEDULES = ("constant", "cosine", "plateau")
"""Learning rate schedules of the children (`SearchConfig.lr_schedule`); the supervised
trainers implement them (`trainers.options.LR_SCHEDULES`, kept equal by a test; importing
trainers here would load torch for `--help`)."""
DUPLICATES = ("reuse", "retrain")
"""What an architecture proposed again gets (`SearchConfig.duplicates`)."""
SCHEDULERS = ("fifo", "asha", "hyperband")
"""Early stopping of children (`SearchConfig.scheduler`; `search.schedulers` builds them)."""
AUTO_SCHEDULER = "auto"
"""`SearchConfig.scheduler`'s default: ``asha`` where it can stop a child, else ``fifo``
(`search.runner` makes it concrete before a search starts)."""
KEEP = ("confirmed", "best")
"""What a search with confirmation runs keeps (`SearchConfig.keep`)."""
CONTROLLERS = ("dqn", "evolution", "local", "qlearning", "random", "reinforce", "tpe")
"""The built-in controllers (`controller.list_controllers`, kept equal by a test; importing
controller here would load torch for `--help`). Listed by ``--help``; the registry checks a
name, so a controller registered from Python is searched with too."""


class ConfigError(ValueError):
    """A search setting is missing, unknown or out of range."""


_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother = 2, 60, 60
"""How a bad value is quoted in an error: short, whatever its size."""


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: Any) -> float:
    """Whole seconds in a duration such as ``30m``, ``2h``, ``1h30m`` or ``90s`` (a bare
    integer is seconds); ValueError unless it is one, and above 0."""
    whole = isinstance(text, numbers.Integral) and not isinstance(text, bool)
    if whole or (isinstance(text, str) and text.strip().isdigit()):
        seconds = float(text)
    else:
        match = _DURATION.fullmatch(str(text).strip().lower().replace(" ", ""))
        if match is None or not any(match.groups()):
            raise ValueError(f"not a duration: {text!r}")
        hours, minutes, secs = (int(g or 0) for g in match.groups())
        seconds = float(hours * 3600 + minutes * 60 + secs)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"not a duration above 0: {text!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """``1h30m``-style spelling of whole `seconds` (the inverse of `parse_duration`)."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{unit}" for v, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"


def _integer(value: Any, low: int, high: float = math.inf) -> bool:
    """An integer (not a bool) from `low` to `high`."""
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and low <= int(value) <= high
    )


def _number(value: Any, low: float, strict: bool = False) -> bool:
    """A finite real number (not a bool) at least `low` (above it when `strict`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        value = float(value)
    except OverflowError:  # an integer past any float
        return False
    return math.isfinite(value) and (value > low if strict else value >= low)


def _plain(value: Any) -> bool:
    """JSON-like data (string keys), holding no loop and at most 10,000 values in all (YAML
    aliases can nest a few lines into billions)."""
    budget, stack = 10_000, [(value, frozenset[int]())]
    while stack:
        node, above = stack.pop()
        budget -= 1
        if budget < 0 or id(node) in above:
            return False
        if isinstance(node, dict):
            if not all(isinstance(k, str) for k in node):
                return False
            stack += [(v, above | {id(node)}) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, above | {id(node)}) for v in node]
        elif node is not None and not isinstance(node, (str, int, float)):
            return False
    return True


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else SQLite at runs/mlflow.db under the working directory."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(RUNS_DIR / 'mlflow.db').resolve()}"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI; None for any other store."""
    if urlparse(tracking_uri).scheme != "sqlite":
        return None
    return Path(tracking_uri[len("sqlite:///") :])


@dataclass
class SearchConfig:
    """Settings of one architecture search.

    Every field can be set from a `--config` file and, unless its metadata says ``flag: False``,
    is a flag of `rlnas search` (`search.config_flags`); a field whose metadata has ``choices``
    takes only those values, one with ``names`` (a tuple, or a function returning one) shows
    its built-in values in ``--help`` but may name others. The docstring under a field
    documents it (`field_docs`): a first paragraph short enough for ``--help``, then any
    details."""

    task: str = "digits"
    """Task name (see `rlnas tasks`) or data file."""
    space: str = field(default="cnn", metadata={"names": list_spaces})
    """Built-in space name or a path to a space YAML file."""
    controller: str = field(default="reinforce", metadata={"names": CONTROLLERS})
    """Controller that proposes architectures."""
    warm_start: str | None = None
    """Start the controller from the final state of the latest search of this name (in the same
    tracking store).

    That search must have used the same controller and ended (its ``controller.pt``), on this
    space or on one that shares decisions with it (by name and choice values): the learned part
    carries over through the shared decisions, this search's own counters and random numbers
    start fresh. The first line says what was carried; a resumed search goes on from its own
    state instead."""
    budget: int = 48
    """Number of children to train."""
    time_budget: str | None = None
    """Wall-clock time the search may take, e.g. ``30m``, ``2h``, ``1h30m``, ``90s``.

    The search stops proposing children once the next could not end in time (a child may take
    as long as the longest so far), lets those running finish, keeps time for the
    confirmation runs (each as long as its architecture's own training took), and registers
    the best. It ends at whichever comes first, `budget`
    children or this time; a resume counts the time already spent and may give more."""
    epochs: int = 20
    """Training epochs per child."""
    scheduler: str = field(
        default=AUTO_SCHEDULER, metadata={"choices": (AUTO_SCHEDULER, *SCHEDULERS)}
    )
    """Early stopping of children: ``fifo`` trains every child all its epochs; ``asha`` stops
    a child whose reward so far at epoch ``grace_epochs * reduction_factor**k`` is below the
    best ``1/reduction_factor`` of the children that reached that epoch; ``hyperband`` runs
    several such brackets, one stopping no one; ``auto`` (the default) is ``asha`` where the
    children report a reward each epoch (every built-in trainer does) and `epochs` exceeds
    `grace_epochs`, else ``fifo``.

    The controller is told a stopped child's reward at the epoch it reached plus the median
    gain from that epoch to the end among the children trained in full, never above those of
    them that were ahead of it then; the registered model is always a child trained in
    full."""
    grace_epochs: int = 2
    """Epochs every child trains before `scheduler` may stop it."""
    reduction_factor: int = 3
    """The share of children kept at each of `scheduler`'s rungs is 1 in this many."""
    concurrency: int = 0
    """Children trained at once; 0 = as many as the cluster's CPUs (or GPUs) allow."""
    cpus_per_trial: float = 1.0
    """CPUs reserved for each child."""
    gpus_per_trial: float = 0.0
    """GPUs reserved for each child (fractions share a GPU)."""
    seed: int = 0
    """Seed of the controller, the data split and every child's training."""
    name: str | None = None
    """Search name: MLflow experiment and registered model; default `<task>-<space>`."""
    batch_size: int = 64
    """Training batch size of each child."""
    lr: float = 3e-3
    """Learning rate of each child's Adam optimiser."""
    lr_schedule: str = field(default="constant", metadata={"choices": LR_SCHEDULES})
    """Learning rate of each child over its epochs: ``constant``; ``cosine``, decaying from
    `lr` towards 0 by the last epoch; or ``plateau``, halved whenever the training loss has
    not improved for 1/30 of the epochs, down to 1e-4, as InceptionTime trains (supervised
    trainers only)."""
    augment: str = "none"
    """Augmentations of each child's training batches, comma-separated, e.g.
    ``scale,jitter,shift`` (sequence classification only).

    `trainers.augment` describes each."""
    objective: Any = None
    """Score each architecture with ``module:function`` instead of training it.

    The function returns a number or a dict of metrics; from Python, a callable may be given."""
    reward: str | None = None
    """Reward expression over the child's metrics, e.g. ``val_accuracy * (params / 1e5) **
    -0.07``; default: the trainer's (or objective's) own reward."""
    duplicates: str = field(default="reuse", metadata={"choices": DUPLICATES})
    """An architecture proposed again: ``reuse`` its result, or ``retrain`` it (new seed) and
    tell the controller the mean reward."""
    confirm: int = 0
    """After the budget, retrain this many of the best architectures (of those trained in
    full: an early-stopped child's reward is an estimate) and pick the best by mean reward; 0:
    none. A scheduler never stops a confirmation run.

    Each trains `confirm_runs` more times (new seeds); the best is the one of highest mean
    reward over all its trainings."""
    confirm_runs: int = 2
    """Extra trainings of each confirmed architecture."""
    keep: str = field(default="confirmed", metadata={"choices": KEEP})
    """After confirmation, the model registered: ``confirmed``, every training of every
    confirmed architecture as one ensemble; ``best``, the best architecture's trainings only."""
    child_timeout: float = 0.0
    """Seconds a child may train before it is stopped and counted as failed; 0: no limit."""
    max_failures: int = 5
    """Children failing one after another that stop the search (it stays resumable); 0: never
    stop for failures."""
    controller_options: dict[str, Any] = field(default_factory=dict, metadata={"flag": False})
    """Extra keyword options of the controller, e.g. ``{lr: 0.01}``."""
    include: Any = None
    """Architectures trained first, e.g. a hand-written baseline: a JSON/YAML file holding one
    or a list.

    They count toward the budget, their results answer the controller's duplicates of them,
    and their runs are tagged ``rlnas.included``. A config file (or Python) may also give the
    architectures themselves: a mapping or a list of them."""
    tracking_uri: str | None = None
    """MLflow tracking URI; default MLFLOW_TRACKING_URI or sqlite:///runs/mlflow.db."""
    tracking_outage: float = 600.0
    """Seconds an unreachable tracking server is waited for before the search stops.

    Meanwhile its writes are kept and retried; the stopped search can be resumed."""
    address: str | None = None
    """Address of a Ray cluster (HOST:PORT, or local: a Ray started for the search); default
    RAY_ADDRESS, else local."""
    storage: str | None = None
    """Where Ray Tune keeps trial results and checkpoints; default runs/ray."""
    quiet: bool = False
    """Print no progress lines."""

    def __post_init__(self) -> None:
        if self.name is None:
            what = Path(self.task).stem
            if self.objective is not None:
                what = str(getattr(self.objective, "__name__", self.objective)).split(":")[-1]
            # MLflow model names: letters, digits, '-', '_', '.' (ucr:GunPoint -> ucr-GunPoint)
            self.name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{what}-{Path(self.space).stem}")
        self.validate()

    @property
    def time_budget_seconds(self) -> float | None:
        """`time_budget` in seconds (None: no limit)."""
        return None if self.time_budget is None else parse_duration(self.time_budget)

    def validate(self) -> None:
        """Raise `ConfigError` on a value of the wrong type or out of range."""
        self._check_time_budget()
        self._check_ranges()
        self._check_augment()
        self._check_choices()
        self._check_scheduler()
        self._check_reward()
        self._check_objective()
        self._check_plain_data()

    def _check_ranges(self) -> None:
        """Counts, sizes, seconds and seeds of the right type and range; a non-empty name."""
        checks = [
            ("budget", _integer(self.budget, 1), "an integer >= 1"),
            ("epochs", _integer(self.epochs, 1), "an integer >= 1"),
            ("concurrency", _integer(self.concurrency, 0), "an integer >= 0"),
            ("grace_epochs", _integer(self.grace_epochs, 1), "an integer >= 1"),
            ("reduction_factor", _integer(self.reduction_factor, 2), "an integer >= 2"),
            ("cpus_per_trial", _number(self.cpus_per_trial, 0, strict=True), "a finite number > 0"),
            ("gpus_per_trial", _number(self.gpus_per_trial, 0), "a finite number >= 0"),
            ("seed", _integer(self.seed, 0, 2**32 - 1), "an integer from 0 to 2**32 - 1"),
            ("batch_size", _integer(self.batch_size, 1), "an integer >= 1"),
            ("lr", _number(self.lr, 0, strict=True), "a finite number > 0"),
            ("confirm", _integer(self.confirm, 0), "an integer >= 0"),
            ("confirm_runs", _integer(self.confirm_runs, 1), "an integer >= 1"),
            ("child_timeout", _number(self.child_timeout, 0), "a finite number of seconds >= 0"),
            ("max_failures", _integer(self.max_failures, 0), "an integer >= 0"),
            (
                "tracking_outage",
                _number(self.tracking_outage, 0, strict=True),
                "a finite number of seconds > 0",
            ),
            ("name", isinstance(self.name, str) and bool(self.name.strip()), "a non-empty name"),
            (
                "warm_start",
                self.warm_start is None
                or (isinstance(self.warm_start, str) and bool(self.warm_start.strip())),
                "the name of a search",
            ),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"{key}: got {_SHOW.repr(getattr(self, key))}, expected {expected}"
                )

    def _check_time_budget(self) -> None:
        """A duration; normalises `time_budget` to its canonical spelling (``1h30m``)."""
        if self.time_budget is None:
            return
        try:
            seconds = parse_duration(self.time_budget)
        except ValueError:
            raise ConfigError(
                f"time_budget: got {_SHOW.repr(self.time_budget)}, expected a duration such as "
                "30m, 2h, 1h30m or 90s"
            ) from None
        self.time_budget = format_duration(seconds)

    def _check_augment(self) -> None:
        """Known augmentation names; normalises `augment` to its canonical spelling."""
        from trainers.augment import parse_augmentations

        try:
            names = parse_augmentations(self.augment)
        except (ValueError, AttributeError, TypeError) as exc:
            raise ConfigError(f"augment: {exc}") from None
        self.augment = ",".join(names) or "none"

    def _check_scheduler(self) -> None:
        """An early-stopping scheduler has a rung before the last epoch."""
        if self.scheduler in ("asha", "hyperband") and self.grace_epochs >= self.epochs:
            raise ConfigError(
                f"grace_epochs: {self.grace_epochs} is not below epochs ({self.epochs}): "
                f"--scheduler {self.scheduler} could stop no child; lower it or use fifo"
            )

    def _check_choices(self) -> None:
        """Fields with a fixed set of values (their ``choices`` metadata) hold one of them."""
        for choice in dataclasses.fields(self):
            allowed = choice.metadata.get("choices")
            if allowed is not None and getattr(self, choice.name) not in allowed:
                raise ConfigError(
                    f"{choice.name}: got {_SHOW.repr(getattr(self, choice.name))}, "
                    f"expected one of {', '.join(allowed)}"
                )

    def _check_reward(self) -> None:
        """`reward`, when given, parses as a reward expression."""
        if self.reward is None:
            return
        from search.rewards import RewardExpression, RewardExpressionError

        unparsable = (
            f"reward: got {_SHOW.repr(self.reward)}, expected an expression of metric "
            "names, numbers, + - * / ** and functions"
        )
        try:
            RewardExpression(self.reward)
        except RewardExpressionError as exc:
            raise ConfigError(f"reward: {exc}" if len(str(exc)) < 400 else unparsable) from None
        except (ValueError, TypeError, AttributeError, RecursionError, MemoryError):
            # Python's own parser gives up on some texts (NUL bytes, deep nesting)
            raise ConfigError(unparsable) from None

    def _check_objective(self) -> None:
        """`objective`, when given, is a callable or a ``module:function`` text."""
        if self.objective is not None and not (
            callable(self.objective)
            or (isinstance(self.objective, str) and self.objective.count(":") == 1)
        ):
            raise ConfigError(
                f"objective: got {_SHOW.repr(self.objective)}, "
                "expected 'module:function' or a callable"
            )

    def _check_plain_data(self) -> None:
        """`controller_options` and the included architectures are JSON-like data."""
        if not isinstance(self.controller_options, dict) or not _plain(self.controller_options):
            raise ConfigError(
                "controller_options: expected a mapping of option -> value "
                "(names, numbers, strings, lists)"
            )
        if not _plain(self.included_architectures()):
            raise ConfigError(
                "include: expected architectures as JSON-like data (mappings with string "
                "keys, lists, strings, numbers), at most 10,000 values"
            )

    def included_architectures(self) -> list[dict[str, Any]]:
        """The architectures of `include`, read from its file when it is a path."""
        value, where = self.include, "include"
        if value is None:
            return []
        if isinstance(value, (str, Path)):
            import reprlib

            show = reprlib.Repr()
            show.maxstring = 200
            where = f"include: {show.repr(str(value))[1:-1]}"
            try:
                text = read_text(value, "JSON or YAML")
            except YamlFileError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            try:
                value = parse_yaml(text)
            except YamlFileError:
                raise ConfigError(f"{where}: not valid JSON or YAML") from None
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
            raise ConfigError(f"{where}: expected an architecture (a mapping) or a list of them")
        return value

    @property
    def resolved_name(self) -> str:
        """`name`, which construction fills in (``<task>-<space>`` when not given)."""
        if self.name is None:
            raise ConfigError("name: missing")
        return self.name

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    @property
    def resolved_storage(self) -> str:
        return str(Path(self.storage or RUNS_DIR / "ray").resolve())

    @property
    def resolved_cache(self) -> str:
        """Beside the Tune storage: ``runs/cache`` by default (e.g. reference classifiers)."""
        return str(Path(self.resolved_storage).parent / "cache")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if callable(self.objective):
            data["objective"] = f"{self.objective.__module__}:{self.objective.__qualname__}"
        return data

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def field_docs(cls) -> dict[str, str]:
        """Each field's docstring (the string under it in the source), dedented."""
        return _field_docs()

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> SearchConfig:
        """Read a YAML config file; `overrides` (e.g. from flags) win over the file."""
        path = Path(path)
        try:
            data, _ = read_yaml(path)
        except YamlFileError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if data is None:
            data = {}  # an empty file: every setting at its default
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: expected a mapping of setting -> value, got {type(data).__name__}"
            )
        spelled: dict[str, str] = {}  # setting -> the key as the file spells it
        for key in data:
            setting = str(key).replace("-", "_")
            plain = isinstance(key, str) and key.isprintable() and 0 < len(key) <= 60
            shown = key if plain else shorten(key)
            if setting in spelled:
                raise ConfigError(
                    f"{path}: {shown}: set twice (also as {spelled[setting]}); "
                    "expected each setting once"
                )
            spelled[setting] = shown
        unknown = sorted(set(spelled) - set(cls.field_names()))
        if unknown:
            raise ConfigError(
                f"{path}: {spelled[unknown[0]]}: unknown setting "
                f"(expected one of {cls.field_names()})"
            )
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        data.update(overrides)
        return cls.build(data, where=str(path))

    @classmethod
    def build(cls, data: dict[str, Any], where: str = "config") -> SearchConfig:
        """Make a config from a mapping, checking every value's type."""
        import reprlib

        show = reprlib.Repr()
        show.maxlevel, show.maxstring, show.maxother = 2, 60, 60
        defaults = cls()
        fields = cls.field_names()
        for key, value in data.items():
            if key not in fields:
                raise ConfigError(
                    f"{where}: {show.repr(key)}: unknown setting (expected one of {fields})"
                )
            expected = type(getattr(defaults, key))
            if key == "include":
                ok = value is None or isinstance(value, (str, dict, list))
                expected_name = "a file path, an architecture or a list of them"
            elif getattr(defaults, key) is None:
                ok = value is None or isinstance(value, str)
                expected_name = "a string"
            elif expected is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                expected_name = "a number"
            else:
                ok = isinstance(value, expected) and not (
                    expected is int and isinstance(value, bool)
                )
                expected_name = {
                    int: "an integer",
                    str: "a string",
                    bool: "true or false",
                    dict: "a mapping",
                }.get(expected, expected.__name__)
            if not ok:
                raise ConfigError(
                    f"{where}: {key}: got {show.repr(value)}, expected {expected_name}"
                )
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


@functools.cache
def _field_docs() -> dict[str, str]:
    (tree,) = ast.parse(textwrap.dedent(inspect.getsource(SearchConfig))).body
    assert isinstance(tree, ast.ClassDef)
    docs = {}
    for node, below in zip(tree.body, tree.body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(below, ast.Expr)
            and isinstance(below.value, ast.Constant)
            and isinstance(below.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(below.value.value)
    undocumented = [f.name for f in dataclasses.fields(SearchConfig) if f.name not in docs]
    if undocumented:
        raise TypeError(f"SearchConfig: fields without a docstring: {undocumented}")
    return docs
