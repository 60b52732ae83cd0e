"""`rlnas bench` on tables with known values, the table maker, and the shipped table."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from controller.base import Candidate, Controller
from search.bench import (
    TABLES_DIR,
    BenchError,
    add_bench_arguments,
    check_table,
    load_table,
    median_interval,
    run_bench,
    run_bench_command,
    run_controller,
    shipped_tables,
    summarize,
)
from search.bench.tables import epoch_column

MAKE_TABLE = Path(__file__).resolve().parents[2] / "benchmarks" / "make_table.py"

TINY_SPACE = """\
name: tiny
family: mlp
decisions:
  - repeat: layers
    count: [1, 2]
    decisions:
      - {name: width, choices: [8, 16]}
"""

# widths -> (validation per seed, test per seed); "" is a diverged seed (no test metric).
TINY_VALUES = {
    (8,): ((0.5, 0.7), (0.55, 0.65)),  # mean val 0.6, test 0.6
    (16,): ((0.7, 0.7), (0.68, 0.72)),  # 0.7, 0.7
    (8, 8): ((0.8, 0.6), (0.5, "")),  # 0.7, 0.5
    (8, 16): ((0.9, 0.9), (0.85, 0.87)),  # 0.9 (best, tied), 0.86
    (16, 8): ((0.75, 0.85), (0.8, 0.8)),  # 0.8, 0.8
    (16, 16): ((0.9, 0.9), (0.9, 0.92)),  # 0.9 (best, tied), 0.91
}


def _arch(widths) -> dict:
    return {"layers": [{"width": w} for w in widths]}


def _key(widths) -> str:
    return json.dumps(_arch(widths), sort_keys=True, separators=(",", ":"))


def write_tiny(
    tmp_path: Path, skip=(), extra_rows=(), metric="accuracy", recipe=None, flip=False
) -> Path:
    """The tiny table; with `flip`, every value v becomes the error 1 - v (same ranking,
    reversed direction)."""
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    path = tmp_path / "tiny.csv"
    header = ["key", "layers", f"val_{metric}_seed0", f"val_{metric}_seed1"]
    header += [f"test_{metric}_seed0", f"test_{metric}_seed1", "params", "train_seconds"]
    if recipe is not None:
        path.with_suffix(".json").write_text(json.dumps(recipe))

    def value(v):
        return round(1 - v, 6) if flip and v != "" else v

    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for widths, (val, test) in TINY_VALUES.items():
            if widths not in skip:
                values = [value(v) for v in (*val, *test)]
                writer.writerow([_key(widths), len(widths), *values, 100, 0.1])
        for row in extra_rows:
            writer.writerow(row)
    return path


class Scripted(Controller):
    """Proposes a fixed list of architectures per seed (not registered)."""

    SCRIPTS = {
        0: [(8,), (8, 8), (16,), (16, 8), (8, 8), (16, 16)],
        1: [(8, 16), (16, 16), (8,), (8,), (8,), (8,)],
        2: [(8,), (16,), (8,), (16,), (8,), (16,)],
    }

    def __init__(self, space, seed: int = 0, **options) -> None:
        super().__init__(space, seed=seed, **options)
        self.told: list[float] = []

    def ask(self) -> Candidate:
        widths = self.SCRIPTS[self.seed][self._next_id]
        return self._candidate(self.space.encode(_arch(widths)))

    def tell(self, candidate: Candidate, reward: float | None) -> None:
        self._settle(candidate)
        self.told.append(reward)


def scripted(space, seed):
    return Scripted(space, seed=seed)


def test_table_reads_values_and_means(tmp_path):
    table = load_table(write_tiny(tmp_path))
    assert table.name == "tiny" and table.metric == "accuracy"
    assert table.val.shape == (6, 2) and check_table(table) == []
    assert table.optimum == pytest.approx(0.9)
    assert table.top_threshold() == pytest.approx(0.9)  # top 1% of 6 rows: the best row
    row = table.keys.index(_key((8, 8)))
    assert table.val_mean[row] == pytest.approx(0.7)
    assert table.test_mean[row] == pytest.approx(0.5)  # the diverged seed is left out


SCRIPTED_REGRET = [  # the scripted controller's regret on the tiny table, seeds 0-2, by hand
    [0.3, 0.2, 0.2, 0.1, 0.1, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.3, 0.2, 0.2, 0.2, 0.2, 0.2],
]


def test_regret_top_hits_and_selection_by_hand(tmp_path):
    table = load_table(write_tiny(tmp_path))
    runs = [run_controller(table, scripted, seed, budget=6) for seed in range(3)]
    s = summarize(table, "scripted", runs)
    np.testing.assert_allclose(s.regret, SCRIPTED_REGRET, atol=1e-12)
    assert s.evals_to_top == [6, 1, None]
    assert s.not_reached == 1 and s.median_evals_to_top == 6
    # selected: [16,16] (first 0.9 of seed 0), [8,16] (first of the tie in seed 1), [16]
    np.testing.assert_allclose(s.selected_test, [0.91, 0.86, 0.7])
    mean, se = s.regret_at(6)
    assert mean == pytest.approx(0.2 / 3)
    assert se == pytest.approx(np.std([0, 0, 0.2], ddof=1) / math.sqrt(3))
    assert s.regret_at(3) == pytest.approx((0.4 / 3, np.std([0.2, 0, 0.2], ddof=1) / math.sqrt(3)))


ERROR_RECIPE = {"metric": "nrmse", "higher_is_better": False}


@pytest.mark.parametrize("recipe", [ERROR_RECIPE, None], ids=["recipe", "by-name"])
def test_error_metric_is_minimised(tmp_path, recipe):
    table = load_table(write_tiny(tmp_path, metric="nrmse", recipe=recipe, flip=True))
    assert table.metric == "nrmse" and not table.higher_is_better
    assert table.optimum == pytest.approx(0.1)  # the smallest mean error, not the largest
    assert table.top_threshold() == pytest.approx(0.1)
    runs = [run_controller(table, scripted, seed, budget=6) for seed in range(3)]
    s = summarize(table, "scripted", runs)
    # errors are 1 - accuracy: the same regret, hits and selection as the accuracy table
    np.testing.assert_allclose(s.regret, SCRIPTED_REGRET, atol=1e-9)
    assert s.evals_to_top == [6, 1, None]
    np.testing.assert_allclose(s.selected_val, [0.1, 0.1, 0.3], atol=1e-9)
    np.testing.assert_allclose(s.selected_test, [0.09, 0.14, 0.3], atol=1e-9)
    text = run_bench(table, {"scripted": scripted}, 3, 6, out_dir=tmp_path, track=False).format()
    assert "best mean validation nrmse 0.1000, top 1% up to 0.1000" in text
    assert "regret = best found minus optimum" in text


def test_controller_is_told_a_bounded_reward_for_an_error_metric(tmp_path):
    table = load_table(write_tiny(tmp_path, metric="nrmse", recipe=ERROR_RECIPE, flip=True))
    seen = []

    def factory(space, seed):
        seen.append(Scripted(space, seed=seed))
        return seen[-1]

    run_controller(table, factory, 0, budget=6)
    errors = np.array([0.4, 0.3, 0.3, 0.2, 0.3, 0.1])
    np.testing.assert_allclose(seen[0].told, 1 / (1 + errors))


def test_recipe_direction_wins_and_mismatches_are_refused(tmp_path):
    up = {"metric": "nrmse", "higher_is_better": True}
    assert load_table(write_tiny(tmp_path, metric="nrmse", recipe=up)).higher_is_better
    assert not load_table(write_tiny(tmp_path), higher_is_better=False).higher_is_better
    with pytest.raises(BenchError, match="recipe metric 'accuracy'"):
        load_table(write_tiny(tmp_path, metric="nrmse", recipe={"metric": "accuracy"}))
    negative = [_key((8,)), 1, -0.1, 0.1, 0.1, 0.1, 1, 0.1]
    (tmp_path / "tiny.json").unlink()
    with pytest.raises(BenchError, match="must not be negative"):
        load_table(write_tiny(tmp_path, skip=[(8,)], extra_rows=[negative], metric="nrmse"))


def test_controller_is_told_the_mean_validation_metric(tmp_path):
    table = load_table(write_tiny(tmp_path))
    seen = []

    def factory(space, seed):
        seen.append(Scripted(space, seed=seed))
        return seen[-1]

    run_controller(table, factory, 0, budget=6)
    np.testing.assert_allclose(seen[0].told, [0.6, 0.7, 0.7, 0.8, 0.7, 0.9])


def test_median_not_reached_when_most_seeds_miss(tmp_path):
    table = load_table(write_tiny(tmp_path))
    runs = [run_controller(table, scripted, seed, budget=6) for seed in (0, 2, 2)]
    s = summarize(table, "scripted", runs)
    assert s.not_reached == 2 and s.median_evals_to_top is None


@pytest.mark.parametrize(
    ("n", "ranks"), [(6, (1, 6)), (10, (2, 9)), (30, (10, 21)), (100, (40, 61))]
)
def test_median_interval_is_the_order_statistics_of_95_percent(n, ranks):
    # ranks of the distribution-free 95% interval of a median (e.g. Conover's tables)
    values = [float(v) for v in np.random.default_rng(n).permutation(np.arange(1, n + 1))]
    assert median_interval(values) == (float(ranks[0]), float(ranks[1]))


def test_median_interval_covers_the_median_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = [
        lo <= 0.0 <= hi
        for lo, hi in (median_interval(list(rng.standard_cauchy(30))) for _ in range(2000))
    ]
    assert 0.94 <= np.mean(covered) <= 0.985  # 95.7% exactly, for 30 values


def test_seeds_spread_over_processes_give_the_same_results(tmp_path):
    table = write_tiny(tmp_path)
    one, two = (
        run_bench(
            table,
            ["random", "local"],
            seeds=4,
            budget=12,
            jobs=jobs,
            track=False,
            out_dir=tmp_path / f"jobs{jobs}",
        )
        for jobs in (1, 2)
    )
    for a, b in zip(one.summaries, two.summaries, strict=True):
        assert a.name == b.name and a.evals_to_top == b.evals_to_top
        np.testing.assert_array_equal(a.regret, b.regret)
    with pytest.raises(BenchError, match="jobs"):
        run_bench(table, ["random"], seeds=1, budget=1, jobs=0, track=False)


def test_all_runs_every_shipped_table(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    args = parser.parse_args(
        ["--all", "--controllers", "random", "--seeds", "2", "--budget", "5"]
        + ["--out", str(tmp_path), "--no-tracking"]
    )
    assert run_bench_command(args) == 0
    out = capsys.readouterr().out
    for name in shipped_tables():
        assert f"table {name}:" in out and (tmp_path / name / f"bench-{name}.csv").exists()
    assert "[95% CI]" in out
    args = parser.parse_args(["digits-mlp", "--all", "--no-tracking"])
    assert run_bench_command(args) == 2
    assert "--all runs every shipped table" in capsys.readouterr().err


def _bench_tiny(tmp_path, **kwargs):
    return run_bench(
        write_tiny(tmp_path),
        {"scripted": scripted},
        seeds=3,
        budget=6,
        out_dir=tmp_path / "out",
        **kwargs,
    )


def test_run_bench_writes_csv_and_png(tmp_path):
    result = _bench_tiny(tmp_path, track=False)
    assert result.run_id is None
    assert result.png_path.stat().st_size > 1000
    with result.csv_path.open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["controller"] == "scripted" and row["budget"] == "6"
    assert float(row["regret_6_mean"]) == pytest.approx(0.2 / 3, abs=1e-6)
    assert float(row["evals_to_top1pct_median"]) == 6 and row["top1pct_not_reached"] == "1"
    assert float(row["selected_test_mean"]) == pytest.approx((0.91 + 0.86 + 0.7) / 3, abs=1e-6)
    text = result.format()
    assert "scripted" in text and "1/3 not reached" in text


@pytest.mark.slow  # creating a SQLite tracking store takes MLflow several seconds
def test_run_bench_logs_one_mlflow_run(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = _bench_tiny(tmp_path, tracking_uri=uri, command="rlnas bench tiny")
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "bench-tiny"
    assert run.data.params["controllers"] == "scripted" and run.data.params["seeds"] == "3"
    assert run.data.params["budget"] == "6" and run.data.params["command"] == "rlnas bench tiny"
    assert run.data.metrics["scripted.regret_6_mean"] == pytest.approx(0.2 / 3)
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"bench-tiny.csv", "bench-tiny.png", "summary.txt"} <= names


def test_command_with_a_registered_controller(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    table = write_tiny(tmp_path)
    args = parser.parse_args(
        [str(table), "--controllers", "random", "--seeds", "2", "--budget", "30"]
        + ["--out", str(tmp_path / "out"), "--no-tracking"]
    )
    assert run_bench_command(args) == 0
    out = capsys.readouterr().out
    assert "random" in out and "regret@25" in out
    assert f"reproduce: rlnas bench {table} --controllers random --seeds 2 --budget 30" in out
    assert (tmp_path / "out" / "bench-tiny.csv").exists()

    args = parser.parse_args([str(table), "--controllers", "nope", "--no-tracking"])
    assert run_bench_command(args) == 2
    assert "unknown controller 'nope'" in capsys.readouterr().err


def test_bad_tables_are_refused(tmp_path):
    with pytest.raises(BenchError, match="no table"):
        load_table(tmp_path / "missing.csv")
    dup = [_key((8,)), 1, 0.1, 0.1, 0.1, 0.1, 1, 0.1]
    with pytest.raises(BenchError, match="appears twice"):
        load_table(write_tiny(tmp_path, extra_rows=[dup]))
    odd = ['{"layers": [{"width": 8}]}', 1, 0.1, 0.1, 0.1, 0.1, 1, 0.1]
    with pytest.raises(BenchError, match="not canonical"):
        load_table(write_tiny(tmp_path, skip=[(8,)], extra_rows=[odd]))
    missing = [_key((8,)), 1, "", 0.1, 0.1, 0.1, 1, 0.1]
    with pytest.raises(BenchError, match="missing value"):
        load_table(write_tiny(tmp_path, skip=[(8,)], extra_rows=[missing]))


def _add_curves(path: Path, curves, metric="accuracy", epochs=2) -> None:
    """Append curve columns to a table: ``curves(row, seed, epoch)`` is a cell's text."""
    rows = list(csv.reader(path.open(newline="")))
    names = [(s, e) for s in (0, 1) for e in range(1, epochs + 1)]
    rows[0] += [epoch_column("val", metric, s, e) for s, e in names]
    for i, row in enumerate(rows[1:]):
        row += [curves(i, s, e) for s, e in names]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_load_table_reads_the_learning_curves(tmp_path):
    path = write_tiny(tmp_path)
    assert load_table(path).curves is None  # a table made before the curves
    _add_curves(path, lambda i, s, e: "" if (s, e) == (1, 2) else f"{i / 10 + s / 100 + e}")
    table = load_table(path)
    assert table.curves is not None and table.curves.shape == (6, 2, 2)
    assert table.curves[4, 0, 1] == pytest.approx(2.4)  # row 4, seed 0, epoch 2
    assert table.curves[5, 1, 0] == pytest.approx(1.51)
    assert np.isnan(table.curves[:, 1, 1]).all()  # not reached: NaN
    assert np.isfinite(table.curves[:, :, 0]).all()


def test_bad_curve_columns_are_refused(tmp_path):
    path = write_tiny(tmp_path)
    _add_curves(path, lambda i, s, e: "0.5", metric="nrmse")
    with pytest.raises(BenchError, match="not of the metric 'accuracy'"):
        load_table(path)
    path = write_tiny(tmp_path)
    _add_curves(path, lambda i, s, e: "0.5")
    rows = list(csv.reader(path.open(newline="")))
    drop = rows[0].index("val_accuracy_seed1_epoch1")
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([r[:drop] + r[drop + 1 :] for r in rows])
    with pytest.raises(BenchError, match="no 'val_accuracy_seed1_epoch1'"):
        load_table(path)
    path = write_tiny(tmp_path)
    _add_curves(path, lambda i, s, e: "x")
    with pytest.raises(BenchError, match="'x' is not a number"):
        load_table(path)


def test_incomplete_table_is_reported_and_its_holes_raise(tmp_path):
    table = load_table(write_tiny(tmp_path, skip=[(16, 16)]))
    assert check_table(table) == ["5 rows for 6 architectures of the space"]
    with pytest.raises(BenchError, match="no row for"):
        run_controller(table, scripted, 0, budget=6)


def _make_table_module():
    spec = importlib.util.spec_from_file_location("make_table", MAKE_TABLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_table_resumes_without_duplicates(tmp_path):
    make_table = _make_table_module()
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    argv = [str(space), "--epochs", "1", "--seeds", "2"]
    assert make_table.main([*argv, "--limit", "2"]) == 0
    out = tmp_path / "tiny.csv"
    with out.open("a") as f:
        f.write('"{""layers"":[{""wid')  # a crash in the middle of a row
    assert make_table.main(argv) == 0
    table = load_table(out)
    assert check_table(table) == [] and len(table.keys) == 6
    assert ((table.val > 0) & (table.val <= 1)).all()
    assert table.curves is not None and table.curves.shape == (6, 2, 1)
    assert (table.curves[:, :, 0] == table.val).all()  # one epoch: the best one
    assert make_table.main([*argv, "--epochs", "2"]) == 2  # another recipe is refused


def test_make_table_keeps_every_epoch_and_refuses_other_columns(tmp_path, capsys):
    make_table = _make_table_module()
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    argv = [str(space), "--epochs", "3", "--seeds", "2", "--limit", "2"]
    assert make_table.main(argv) == 0
    out = tmp_path / "tiny.csv"
    header = next(csv.reader(out.open(newline="")))
    assert header[-6:] == [epoch_column("val", "accuracy", s, e) for s in (0, 1) for e in (1, 2, 3)]
    table = load_table(out)
    assert table.curves is not None and table.curves.shape == (2, 2, 3)
    assert np.isfinite(table.curves).all()
    assert (table.curves.max(axis=2) == table.val).all()  # the best epoch's value
    # a table begun without the curves (its recipe gone) is refused, not mixed
    rows = [r[:-6] for r in csv.reader(out.open(newline=""))]
    with out.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    out.with_suffix(".json").unlink()
    assert make_table.main(argv) == 2
    assert "differ" in capsys.readouterr().err


def test_make_table_records_an_error_metric_for_forecasting(tmp_path):
    make_table = _make_table_module()
    space = tmp_path / "mg.yaml"
    space.write_text(
        "family: tdnn\ndecisions:\n  - repeat: layers\n    count: [1]\n    decisions:\n"
        "      - {name: channels, choices: [4, 8]}\n"
    )
    argv = [str(space), "--task", "forecast:MackeyGlass", "--epochs", "1", "--seeds", "2"]
    assert make_table.main(argv) == 0
    recipe = json.loads((tmp_path / "mg.json").read_text())
    assert recipe["metric"] == "nrmse" and recipe["higher_is_better"] is False
    table = load_table(tmp_path / "mg.csv")
    assert table.metric == "nrmse" and not table.higher_is_better
    assert check_table(table) == [] and (table.val > 0).all() and np.isfinite(table.test).all()
    assert table.curves is not None and (table.curves.min(axis=2) == table.val).all()


SHIPPED = {  # name: metric, higher is better, epochs of its learning curves (None: made before)
    "digits-mlp": ("accuracy", True, None),
    "mackeyglass-tdnn": ("nrmse", False, None),
    "digits-cnn": ("accuracy", True, 5),
    "italypower-rnn": ("accuracy", True, 4),
    "japanesevowels-rnn": ("accuracy", True, 4),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_table_covers_its_space_once_with_two_seeds(tmp_path, name):
    path = TABLES_DIR / f"{name}.csv"
    assert path.exists()
    table = load_table(name)
    metric, higher_is_better, epochs = SHIPPED[name]
    assert (table.metric, table.higher_is_better) == (metric, higher_is_better)
    if epochs is None:
        assert table.curves is None
    else:
        assert table.curves is not None and table.curves.shape[1:] == (table.val.shape[1], epochs)
        best = (
            np.nanmax(table.curves, axis=2) if higher_is_better else np.nanmin(table.curves, axis=2)
        )
        assert np.allclose(best, table.val)  # no seed diverged in these tables
    assert check_table(table) == []  # every architecture once (duplicates refused on load)
    assert len(table.keys) >= 1000 and table.val.shape[1] >= 2
    assert np.isfinite(table.test_mean).all()
    assert path.stat().st_size < 2_000_000
    result = run_bench(table, ["random"], seeds=2, budget=25, out_dir=tmp_path, track=False)
    assert (result.summaries[0].regret >= 0).all()


def test_warm_start_from_a_related_table_runs_both_side_by_side(tmp_path):
    (tmp_path / "source").mkdir()
    source = write_tiny(tmp_path / "source")
    result = run_bench(
        write_tiny(tmp_path),
        ["local", "random"],
        seeds=3,
        budget=6,
        track=False,
        out_dir=tmp_path / "out",
        warm_from=source,
        warm_budget=6,
    )
    local, local_warm, random, random_warm = result.summaries
    assert [s.name for s in result.summaries] == ["local", "local-warm", "random", "random-warm"]
    assert local_warm.evals_to_top == [1, 1, 1]  # it starts from the source's best
    assert random_warm.evals_to_top == random.evals_to_top  # random search learns nothing
    text = result.format()
    assert "warm start from tiny (6 asks per seed there first)" in text
    gain = [line for line in text.splitlines() if line.startswith("local ")][-1].split()[-1]
    assert gain == f"{local.median_evals_to_top - 1:g}"  # cold minus warm
    with result.csv_path.open(newline="") as f:
        assert [row["controller"] for row in csv.DictReader(f)][:2] == ["local", "local-warm"]


def test_warm_start_command_and_its_refusals(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    table = write_tiny(tmp_path)
    common = ["--controllers", "tpe", "--seeds", "2", "--budget", "8", "--no-tracking"]
    args = parser.parse_args(
        [str(table), *common, "--out", str(tmp_path / "out"), "--warm-start-from", str(table)]
    )
    assert run_bench_command(args) == 0
    out = capsys.readouterr().out
    assert "tpe-warm" in out and "cold [95% CI]" in out
    assert f"--budget 8 --warm-start-from {table} --warm-budget 8" in out

    (tmp_path / "flat.yaml").write_text(
        "family: mlp\ndecisions:\n  - {name: units, choices: [1, 2]}\n"
    )
    (tmp_path / "flat.csv").write_text(
        'key,val_accuracy_seed0,val_accuracy_seed1\n"{""units"":1}",0.5,0.5\n'
        '"{""units"":2}",0.6,0.6\n'
    )
    for extra, message in [
        (["--warm-start-from", str(tmp_path / "flat.csv")], "shares no decision with tiny's"),
        (["--warm-budget", "5"], "--warm-budget needs --warm-start-from"),
    ]:
        assert run_bench_command(parser.parse_args([str(table), *common, *extra])) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    args = parser.parse_args(["--all", "--warm-start-from", str(table), "--no-tracking"])
    assert run_bench_command(args) == 2
    assert "no --warm-start-from" in capsys.readouterr().err
