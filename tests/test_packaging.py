"""A plain install (a wheel) carries what rlnas reads at run time: tables, spaces, model code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from search.bench import TABLES_DIR, shipped_tables

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "spaces", "controller", "trainers", "search")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """rlnas's wheel, built from a copy of the sources (the checkout stays clean)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-q", "-w", str(root / "dist"), str(source)], check=True, cwd=root)
    (path,) = (root / "dist").glob("rlnas-*.whl")
    return path


def test_the_wheel_holds_the_tables_the_spaces_and_the_model_code(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    tables = {f"search/bench/tables/{p.name}" for p in TABLES_DIR.iterdir()}
    assert len(shipped_tables()) >= 5 and len(tables) == 3 * len(shipped_tables())
    assert tables <= names
    builtin = {f"spaces/builtin/{p.name}" for p in (ROOT / "spaces" / "builtin").glob("*.yaml")}
    assert builtin and builtin <= names
    assert "search/pyfunc_code.py" in names


def test_rlnas_bench_runs_from_a_plain_install(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    subprocess.run([*install, "--no-deps", str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [str(python), "-c", "import search; print(search.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    ).stdout
    assert where.startswith(str(env_dir)), where
    rlnas = env_dir / "bin" / "rlnas"
    bench = [str(rlnas), "bench", "digits-mlp", "--controllers", "random", "--seeds", "2"]
    done = subprocess.run(
        [*bench, "--budget", "20", "--no-tracking", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "random" in done.stdout
