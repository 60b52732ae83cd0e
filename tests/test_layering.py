"""The direction of every dependency between the packages (DESIGN.md): `spaces`, `controller`
and `trainers` stand on their own; only `search` wires them together with Ray and MLflow.

Each rule is checked twice: on every import statement of every module (those inside functions
too), and on what a fresh interpreter holds once it has imported each module of the package (an
allowed import may bring in a forbidden one).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "controller": ("ray", "mlflow", "trainers", "search"),
    "trainers": ("ray", "mlflow", "controller", "search"),
    "spaces": ("ray", "mlflow", "controller", "trainers", "search"),
}
"""Package -> the modules (with their submodules) it may not import."""


def modules_of(package: str) -> dict[str, Path]:
    """Every module of `package`, by dotted name."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in `module`."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                parts = module.split(".")
                base = parts[: len(parts) - node.level + is_package]
                name = ".".join([*base, name] if name else base)
            found.append((node.lineno, name))
    return sorted(found)


def within(name: str, banned: str) -> bool:
    return name == banned or name.startswith(banned + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_what_its_package_may_not(package):
    broken = [
        f"{path.relative_to(ROOT)}:{line}: {module} imports {name} "
        f"({package} may not import {banned})"
        for module, path in modules_of(package).items()
        for line, name in imports_of(module, path)
        for banned in FORBIDDEN[package]
        if within(name, banned)
    ]
    assert not broken, "\n".join(broken)


_PROBE = """
import importlib, json, sys
modules, forbidden = json.loads(sys.argv[1]), json.loads(sys.argv[2])
brought = {}  # forbidden module -> the first module whose import loaded it
for module in modules:
    importlib.import_module(module)
    for banned in forbidden:
        loaded = any(n == banned or n.startswith(banned + ".") for n in sys.modules)
        if loaded and banned not in brought:
            brought[banned] = module
print(json.dumps(brought))
"""


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_a_package_loads_nothing_it_may_not_import(package):
    modules, forbidden = sorted(modules_of(package)), FORBIDDEN[package]
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules), json.dumps(forbidden)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    brought = json.loads(out.stdout.strip().splitlines()[-1])
    assert not brought, "\n".join(
        f"importing {module} loads {banned} ({package} may not import {banned})"
        for banned, module in brought.items()
    )


def test_relative_imports_count_by_their_absolute_names(tmp_path):
    source = "from . import _common\nfrom .rnn import x\nfrom ..loading import y\nimport ray.tune\n"
    module, package = tmp_path / "cnn1d.py", tmp_path / "__init__.py"
    module.write_text(source)
    package.write_text(source)
    assert [n for _, n in imports_of("spaces.families.cnn1d", module)] == [
        "spaces.families",
        "spaces.families.rnn",
        "spaces.loading",
        "ray.tune",
    ]
    assert [n for _, n in imports_of("spaces.families", package)][1:3] == [
        "spaces.families.rnn",
        "spaces.loading",
    ]
