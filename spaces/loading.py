"""Finding spaces: built-in names shipped with the package, or YAML files."""

from __future__ import annotations

from pathlib import Path

from spaces.space import Space, SpaceError, _show

__all__ = ["BUILTIN_DIR", "list_spaces", "load_space"]

BUILTIN_DIR = Path(__file__).parent / "builtin"


def list_spaces() -> list[str]:
    """Names of the built-in spaces."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path, check_family: bool = True) -> Space:
    """Load a built-in space by name, or a space file by path.

    Args:
        name_or_path: A built-in name (see `list_spaces`) or a YAML file.
        check_family: Require the space's family to be a registered model family (a space
            searched with a custom objective may name any family).

    Raises:
        SpaceError: the name is unknown, or the file breaks the language, or its family is not
            a registered model family.
    """
    from spaces.families import list_families

    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        space = Space.from_yaml(candidate)
    elif (BUILTIN_DIR / f"{name_or_path}.yaml").exists():
        space = Space.from_yaml(BUILTIN_DIR / f"{name_or_path}.yaml")
    else:
        raise SpaceError(
            str(name_or_path),
            "",
            f"no such space file or built-in space (built-in: {list_spaces()})",
        )
    families = list_families()
    if check_family and space.family not in families:
        raise SpaceError(
            space.source,
            "family",
            f"unknown family {_show(space.family)} (expected one of {families})",
        )
    return space
