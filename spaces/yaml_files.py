"""Reading a YAML file a user wrote: the document, or one line saying what is wrong with it."""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml

__all__ = ["YamlFileError", "parse_yaml", "read_text", "read_yaml", "shorten"]

_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 60


def shorten(value: Any) -> str:
    """A repr of a value from a file, at most about 60 characters."""
    return _SHOW.repr(value)


class YamlFileError(ValueError):
    """The file cannot be read, is not UTF-8, or is not valid YAML (the message says which)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"found duplicate key {_SHOW.repr(key)}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def read_text(path: str | Path, kind: str = "YAML") -> str:
    """The file's UTF-8 text; `kind` names what it should be in the error."""
    try:
        raw = Path(path).read_bytes()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise YamlFileError(f"cannot read the file ({reason})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlFileError(f"not UTF-8 text (byte {exc.start}); expected a {kind} file") from None


def parse_yaml(text: str) -> Any:
    """The YAML document in `text` (safe types only; a key given twice is refused)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or "").split())
        raise YamlFileError(f"not valid YAML{line}" + (f": {problem}" if problem else "")) from None
    except RecursionError:
        raise YamlFileError("not valid YAML: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001
        # PyYAML's constructors raise assorted built-in errors on malformed tagged scalars
        # (`2001-02-30`, `!!int abc`, `!!bool x`, `!!timestamp x`)
        detail = str(exc) if isinstance(exc, ValueError) else "a malformed tagged value"
        raise YamlFileError(f"not valid YAML: {_SHOW.repr(detail)[1:-1]}") from None


def read_yaml(path: str | Path, kind: str = "YAML") -> tuple[Any, str]:
    """The document in the file and its text."""
    text = read_text(path, kind)
    return parse_yaml(text), text
