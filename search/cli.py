"""The `rlnas` command line: search, resume, bench, spaces, tasks, list, show, leaderboard,
export, ui."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exits 2."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _search_parser(sub) -> None:
    from search.config_flags import add_config_flags

    p = sub.add_parser(
        "search",
        help="run an architecture search",
        description="Search a space of architectures for a task; every setting can also be set "
        "in a --config YAML file (flags win).",
    )
    p.add_argument("--config", help="YAML file of settings (keys as the flags, '_' or '-')")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished search of this name instead (see rlnas resume)",
    )
    p.add_argument(
        "--new",
        action="store_true",
        help="start a new search even when one of this name is unfinished",
    )
    _top_flag(p)
    add_config_flags(p, "Each is also a key of the --config file; a flag given wins over the file.")


def _resume_parser(sub) -> None:
    from search.config_flags import add_config_flags

    p = sub.add_parser(
        "resume",
        help="continue a search that ended early (a crash, a kill, Ctrl-C, failures)",
        description="Continue a search where it stopped: finished children are kept, children "
        "that were running train again, the controller goes on from its saved state. Flags may "
        "change where and how it runs (and raise --budget); changing what it searches is "
        "refused.",
    )
    p.add_argument("name", help="search name, e.g. digits-cnn")
    p.add_argument("--run-id", help="resume this parent run (default: the latest search)")
    _top_flag(p)
    add_config_flags(
        p,
        "Those given replace the search's own; only where and how it runs may change, and a "
        "larger --budget.",
        skip={"name"},
        show_defaults=False,
    )


def _top_flag(p) -> None:
    p.add_argument(
        "--top",
        type=int,
        default=5,
        help="leaderboard rows printed at the end (default %(default)s)",
    )


def _kept_text(kept: dict[str, Any], metric: str, single: float | None) -> str:
    """``, test accuracy X (kept: ...)``: the kept ensemble's test metric, then what it beat."""
    name = metric.replace("_", " ")
    value = kept["metrics"].get(metric)
    whose = (
        f"the {kept['architectures']} confirmed architectures' {kept['trainings']} trainings"
        if kept.get("architectures", 1) > 1
        else f"its {kept['trainings']} trainings"
    )
    text = "" if value is None else f", {name} {value:.4f}"
    text += f" (kept: {whose} as one ensemble of {kept['networks']} networks"
    alone = (kept.get("best_architecture_metrics") or {}).get(metric)
    if alone is not None:
        text += f"; the best architecture's trainings alone: {alone:.4f}"
    if single is not None and single == single:
        text += f"; its best training alone: {single:.4f}"
    return text + ")"


def build_parser() -> argparse.ArgumentParser:
    """The parser of `rlnas` and its subcommands."""
    parser = _Parser(prog="rlnas", description="Neural architecture search with RL controllers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _search_parser(sub)
    _resume_parser(sub)

    p = sub.add_parser("spaces", help="list, show or validate search spaces")
    p.add_argument(
        "action",
        nargs="?",
        choices=["list", "show", "validate"],
        default="list",
        help="list the built-in spaces, show one, or validate a space file (default %(default)s)",
    )
    p.add_argument("space", nargs="?", help="built-in name or YAML path (show, validate)")
    p.add_argument(
        "--task",
        help="validate: also build architectures drawn at random from the space for this task "
        "(digits, ucr:GunPoint, a data file): the family must be able to build them",
    )

    sub.add_parser("tasks", help="list the built-in tasks and shipped UCR/UEA archives")

    p = sub.add_parser(
        "bench",
        help="compare controllers on a tabular benchmark (no training)",
        description="Run controllers against a table of pre-trained architectures, in-process, "
        "over many seeds: regret curves, evaluations to the top 1 percent, CSV, PNG and MLflow.",
    )
    from search.bench import add_bench_arguments

    add_bench_arguments(p)

    p = sub.add_parser("list", help="the searches recorded in the tracking store")
    p.add_argument("--tracking-uri", help="MLflow tracking URI")

    p = sub.add_parser(
        "show",
        help="a search (its settings, best child, model) or one of its children",
        description="Show the latest search of a name: its settings, its best child's "
        "architecture and metrics, and where the model is; with CHILD, that child instead.",
    )
    p.add_argument("name", help="search name, e.g. digits-cnn (see rlnas list)")
    p.add_argument("child", nargs="?", help="a child of it: its number or run name (7, child-007)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI")

    p = sub.add_parser("leaderboard", help="best children of a search")
    p.add_argument("name", help="search name, e.g. digits-cnn")
    p.add_argument("--top", type=int, default=10, help="rows to show (default %(default)s)")
    p.add_argument("--all", action="store_true", help="every search of that name, not the latest")
    p.add_argument("--csv", action="store_true", help="every column as CSV, for other tools")
    p.add_argument("--tracking-uri", help="MLflow tracking URI")

    from search.export import FORMATS

    p = sub.add_parser(
        "export",
        help="write a registered model as ONNX, TorchScript or its weights and architecture",
        description="Write model NAME (its best version unless --version) to one file other "
        "runtimes read: onnx and torchscript compute the network's forward (inputs x, and "
        "lengths for sequences; z for a generative model), state-dict writes the model "
        "directory (architecture.json, model.json, state_dict.pt). ONNX needs rlnas[export].",
    )
    p.add_argument("name", help="registered model (search) name, e.g. digits-cnn")
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument("--out", required=True, help="the file to write (state-dict: a new folder)")
    p.add_argument("--version", type=int, help="this model version instead of alias best")
    p.add_argument("--tracking-uri", help="MLflow tracking URI")

    p = sub.add_parser("ui", help="the MLflow UI on 127.0.0.1")
    p.add_argument("--port", type=int, default=5000, help="port (default %(default)s)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///runs/mlflow.db)")
    p.add_argument("--name", help="print only this search's address")
    return parser


def _cmd_search(args: argparse.Namespace) -> int:
    from search.config import ConfigError, SearchConfig
    from search.config_flags import given_settings

    flags = given_settings(args)
    try:
        config = (
            SearchConfig.from_file(args.config, **flags) if args.config else SearchConfig(**flags)
        )
    except ConfigError as exc:
        raise UsageError(f"rlnas search: {exc}") from None
    if args.resume:
        return _resume(config.resolved_name, None, flags, config.resolved_tracking_uri, args.top)
    return _run(config, args.top, new=args.new)


def _cmd_resume(args: argparse.Namespace) -> int:
    from search.config import default_tracking_uri
    from search.config_flags import given_settings

    flags = given_settings(args)
    uri = args.tracking_uri or default_tracking_uri()
    return _resume(args.name, args.run_id, flags, uri, args.top)


def _resume(name: str, run_id: str | None, flags: dict[str, Any], uri: str, top: int) -> int:
    from search.config import SearchConfig
    from search.results import open_store
    from search.resume import check_not_running, find_search, load_resume, merged_config

    storage = SearchConfig(storage=flags.get("storage")).resolved_storage
    _, client = open_store(uri)
    resume = load_resume(client, find_search(client, name, run_id), storage)
    check_not_running(resume, name)
    if resume.status == "FINISHED" and not _asks_for_more(resume.config, flags):
        within = resume.config.get("time_budget")
        raise UsageError(
            f"rlnas resume: search {name!r} (run {resume.run_id}) finished all its "
            f"{resume.config['budget']} children"
            + (f" or its time budget of {within}" if within else "")
            + "; pass a larger --budget"
            + (" or --time-budget" if within else "")
            + " to train more"
        )
    return _run(merged_config(resume, flags), top, resume=resume)


def _asks_for_more(saved: dict[str, Any], flags: dict[str, Any]) -> bool:
    """Whether a resume's flags give a finished search more children or more time."""
    from search.config import parse_duration

    if flags.get("budget", 0) > saved["budget"]:
        return True
    if flags.get("time_budget") is None or saved.get("time_budget") is None:
        return False
    try:
        return parse_duration(flags["time_budget"]) > parse_duration(saved["time_budget"])
    except ValueError:
        return True  # the config's own check says what is wrong with it


def _run(config, top: int, resume=None, new: bool = False) -> int:
    from search.formatting import format_leaderboard
    from search.progress import format_seconds
    from search.runner import run_search

    result = run_search(config, resume=resume, new=new)
    print()
    print(
        f"rlnas: {config.name}: {len(result.leaderboard)} children trained in "
        f"{format_seconds(result.seconds)} ("
        + (f"{result.stopped} stopped early, " if result.stopped else "")
        + f"{result.failed} failed; skipped without training: "
        f"{result.invalid} invalid, {result.reused} already known)"
    )
    if result.exhausted:
        print(f"rlnas: ended before its budget of {config.budget}: {result.exhausted}")
    print(format_leaderboard(result.leaderboard, top=top))
    print()
    if result.best is not None:
        test = result.best.get("test")
        name = str(result.best.get("test_metric") or "test_accuracy").replace("_", " ")
        test_text = "" if test is None or test != test else f", {name} {test:.4f}"
        members = int(result.best.get("ensemble") or 0)
        if result.kept:
            test_text = _kept_text(result.kept, str(result.best.get("test_metric")), test)
        elif members:
            test_text += f" (kept as an ensemble of {members} networks of its architecture)"
        trainings = int(result.best.get("trainings") or 1)
        mean = ""
        if config.confirm and trainings > 1:
            mean = f" (mean {result.best['mean_reward']:.4f} over {trainings} trainings)"
        print(f"best: reward {result.best_reward:.4f}{mean}{test_text}", end="")
        if result.model_version is not None:
            print(
                f"; registered as model '{config.name}' version {result.model_version} (alias "
                "'best' points to the best of all its searches)"
            )
        else:
            print()
    print(
        f"tracking: {result.tracking_uri} (experiment '{config.name}', parent run "
        f"{result.parent_run_id})"
    )
    print("browse:   rlnas ui")
    if result.failure_stop:
        print(
            f"rlnas: search stopped: {result.failure_stop} (each child's error.txt in MLflow "
            f"has the traceback); fix the cause, then `rlnas resume {config.name}`",
            file=sys.stderr,
        )
        return 1
    if result.interrupted:
        print(
            f"rlnas: interrupted after {len(result.leaderboard)} of {result.planned} children; "
            f"the finished ones are kept: `rlnas resume {config.name}` continues the search",
            file=sys.stderr,
        )
        return 130
    if result.model_version is not None:
        print(
            f"use:      python -c \"from search import load_best; m = load_best('{config.name}')\""
        )
    return 0 if result.best is not None else 1


def _cmd_spaces(args: argparse.Namespace) -> int:
    from spaces import list_spaces, load_space

    if args.action == "list":
        for name in list_spaces():
            space = load_space(name)
            print(
                f"{name:<14} family {space.family:<5} {space.cardinality():>16,} architectures"
                f"  {space.description}"
            )
        return 0
    if args.task and args.action != "validate":
        raise UsageError(f"rlnas spaces {args.action}: --task is an option of validate")
    if not args.space:
        raise UsageError(f"rlnas spaces {args.action}: name a built-in space or a YAML file")
    space = load_space(args.space)
    if args.action == "show":
        print(space.describe())
        return 0
    valid = (
        f"{space.source}: valid space '{space.name}' (family {space.family}, "
        f"{space.cardinality():,} architectures)"
    )
    if not args.task:
        print(f"{valid}; not built for a task (--task TASK builds some)")
        return 0
    return _validate_for_task(space, args.task, valid)


def _validate_for_task(space, task_name: str, valid: str) -> int:
    """Build architectures drawn at random from `space` for the task: 0 when any can be built,
    else a one-line refusal with the most common reason."""
    from search.buildable import SPACE_VALIDATE_DRAWS, draw_and_build, validator
    from search.config import ConfigError
    from trainers import load_task

    draws = draw_and_build(space, validator(space, load_task(task_name)), SPACE_VALIDATE_DRAWS, 0)
    if not draws.built:
        raise ConfigError(
            f"{space.source}: none of {draws.drawn} random draws from the space can be built "
            f"by family {space.family!r} for task {task_name!r} (the most common reason: "
            f"{draws.common_reason})"
        )
    built = f"{draws.built} of {draws.drawn} random draws can be built for {task_name}"
    others = f" (the most common reason the others cannot: {draws.common_reason})"
    others = others if draws.reasons else ""
    print(f"{valid}; {built}{others}")
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from trainers import describe_task, list_tasks

    for name in list_tasks():
        info = describe_task(name)
        sizes = "/".join(str(n) for n in info["sizes"])
        notes = f"  ({info['notes']})" if info.get("notes") else ""
        horizon = info.get("horizon", 0)
        outputs = f"horizon {horizon}" if horizon else f"{info['num_classes']} classes"
        print(
            f"{name:<28} {info['kind']:<15} input {tuple(info['input_shape'])}  "
            f"{outputs}  train/val/test {sizes}{notes}"
        )
    print("also: a path to a .npz or .csv file (formats in docs/tasks.md)")
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from search.formatting import format_leaderboard
    from search.results import leaderboard

    frame = leaderboard(
        args.name, top=args.top, tracking_uri=args.tracking_uri, all_searches=args.all
    )
    if args.csv:
        print(frame.to_csv(index=False), end="")
    else:
        print(format_leaderboard(frame, top=args.top))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from search.browse import format_searches, searches
    from search.config import default_tracking_uri, sqlite_path

    path = sqlite_path(args.tracking_uri or default_tracking_uri())
    if path is not None and not path.exists():
        print(f"(no searches recorded at {path}: run `rlnas search` first)")
        return 0
    print(format_searches(searches(args.tracking_uri)))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from search.browse import show_child, show_search

    if args.child is None:
        print(show_search(args.name, args.tracking_uri))
    else:
        print(show_child(args.name, args.child, args.tracking_uri))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from search.export import export_model_dir
    from search.results import registered_model_dir

    with registered_model_dir(args.name, args.version, args.tracking_uri) as path:
        out = export_model_dir(path, args.format, args.out)
    which = "best" if args.version is None else f"version {args.version}"
    print(f"rlnas export: {args.name} ({which}) written as {args.format} to {out}")
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from search.results import open_store
    from search.tracking import local_artifact_root

    uri, client = open_store(args.tracking_uri)
    experiments = [e for e in client.search_experiments() if e.name != "Default"]
    if args.name:
        experiments = [e for e in experiments if e.name == args.name]
        if not experiments:
            raise UsageError(f"rlnas ui: no search named {args.name!r} in {uri}")
    base = f"http://127.0.0.1:{args.port}"
    print(f"MLflow UI for {uri} at {base}")
    for e in experiments:
        for line in _ui_addresses(client, e, base):
            print(line)
    if not experiments:
        print("  (no searches yet: run `rlnas search` first)")
    mlflow = shutil.which("mlflow") or str(Path(sys.executable).with_name("mlflow"))
    command = [
        mlflow,
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
    ]
    if (root := local_artifact_root(uri)) is not None:
        command += ["--default-artifact-root", root]
    print("Starting the server (it can take a minute); Ctrl-C stops it.", flush=True)
    return _serve(command, ready_url=base)


def _ui_addresses(client, experiment, base: str) -> list[str]:
    """A search's runs table (every child listed, where the search made its view) and its
    latest parent run's pictures."""
    from search.pictures import PICTURES
    from search.tags import ROLE_TAG, RUNS_VIEW, RUNS_VIEW_TAG, tag_filter

    where = f"{base}/#/experiments/{experiment.experiment_id}"
    table = f"{where}/runs?workflowType=machine_learning"
    if RUNS_VIEW_TAG in experiment.tags:
        table += f"&viewStateShareKey={RUNS_VIEW}"
    lines = [f"  {experiment.name:<24} {table}"]
    parents = client.search_runs(
        [experiment.experiment_id],
        tag_filter(ROLE_TAG, "search"),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if parents:
        pictures = f"{where}/runs/{parents[0].info.run_id}/artifacts/{PICTURES[0]}"
        pictures += "?workflowType=machine_learning"
        lines.append(f"  {'  pictures':<24} {pictures}")
    return lines


def _serve(command: list[str], ready_url: str | None = None) -> int:
    """Run the server in its own process group; Ctrl-C or SIGTERM stops the whole group.

    With ``ready_url``, say so once the server answers there.
    """
    server = subprocess.Popen(command, start_new_session=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        started = time.monotonic()
        while ready_url and server.poll() is None:
            try:
                urllib.request.urlopen(ready_url, timeout=2).close()
            except OSError:
                time.sleep(0.5)
                continue
            print(f"Ready at {ready_url} ({time.monotonic() - started:.0f} s).", flush=True)
            break
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def _cmd_bench(args: argparse.Namespace) -> int:
    from search.bench import run_bench_command

    return run_bench_command(args)


COMMANDS = {
    "search": _cmd_search,
    "resume": _cmd_resume,
    "bench": _cmd_bench,
    "spaces": _cmd_spaces,
    "tasks": _cmd_tasks,
    "list": _cmd_list,
    "show": _cmd_show,
    "leaderboard": _cmd_leaderboard,
    "export": _cmd_export,
    "ui": _cmd_ui,
}


_USER_ERRORS = {
    "search.config": "ConfigError",
    "search.export": "ExportError",
    "search.objective": "ObjectiveError",
    "search.results": "ResultsError",
    "search.rewards": "RewardExpressionError",
    "spaces": "SpaceError",
    "trainers": "TaskError",
}
"""Where the errors of bad input are defined: each is reported in one line, exit status 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """The bad-input errors of the modules imported so far: one that is not imported raised
    nothing (so a typo in a flag does not wait for MLflow and torch to import)."""
    loaded = [getattr(sys.modules[m], name) for m, name in _USER_ERRORS.items() if m in sys.modules]
    return (UsageError, *loaded)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `rlnas` console script."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except _user_errors() as exc:
        print(_one_line(exc, args), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "rlnas: interrupted; finished children are kept (`rlnas resume NAME` continues)",
            file=sys.stderr,
        )
        return 130
    except _stopped_searches() as exc:
        print(_one_line(exc, args), file=sys.stderr)
        return 1


def _stopped_searches() -> tuple[type[BaseException], ...]:
    """A search that lost its cluster or its tracking store (stopped, resumable), or whose
    controller proposed nothing that can be built for a long run."""
    from search.cluster import ClusterLost
    from search.mlflow_client import TrackingError
    from search.stages import SearchError

    return (ClusterLost, TrackingError, SearchError)


def _one_line(exc: BaseException, args: Any) -> str:
    text = " ".join(str(exc).split())
    prefix = f"rlnas {args.command}: "
    return text if text.startswith("rlnas") else prefix + text


if __name__ == "__main__":
    sys.exit(main())
