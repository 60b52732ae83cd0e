"""`SearchConfig`'s fields as the flags of `rlnas search` and `rlnas resume`.

Each field is written once, in `search/config.py`, and becomes ``--field-name``: its type from
the annotation, its choices from the field's ``choices`` metadata, its help from the first
paragraph of its docstring, the built-in values of its ``names`` metadata and its shown default
from the dataclass. A flag not given parses to
None, so a config file's value (or a resumed search's) stands; a field whose metadata says
``flag: False`` is set in a config file only.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Callable, Collection
from typing import Any

from search.config import SearchConfig

__all__ = [
    "FLAG_TYPES",
    "SETTINGS",
    "add_config_flags",
    "builtin_names",
    "describe",
    "file_only_fields",
    "flag_fields",
    "flag_name",
    "given_settings",
    "shown_default",
]

FLAG_TYPES: dict[str, type] = {
    "int": int,
    "float": float,
    "str": str,
    "str | None": str,
    "Any": str,
}
"""Flag value types by field annotation (``bool`` fields are switches). A field typed ``Any``
(`objective`, `include`) takes a string on the command line: a ``module:function``, a file."""
SETTINGS = "settings"
"""Title of the argument group of these flags in ``--help`` (and docs/cli.md)."""
_CODE = re.compile(r"``(.+?)``|`([^`]+)`")


def flag_fields(skip: Collection[str] = ()) -> list[dataclasses.Field]:
    """The fields that are flags, in the order of the dataclass, less those named in `skip`."""
    return [
        f
        for f in dataclasses.fields(SearchConfig)
        if f.metadata.get("flag", True) and f.name not in skip
    ]


def file_only_fields() -> list[dataclasses.Field]:
    """The fields only a config file (or Python) sets: metadata ``flag: False``."""
    return [f for f in dataclasses.fields(SearchConfig) if not f.metadata.get("flag", True)]


def flag_name(field_name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + field_name.replace("_", "-")


def shown_default(field: dataclasses.Field) -> str | None:
    """The default a flag's help shows: None for a switch, or for a None default (the docstring
    says what stands in for it)."""
    if field.type == "bool" or field.default in (None, dataclasses.MISSING):
        return None
    return f"{field.default:g}" if isinstance(field.default, float) else str(field.default)


def builtin_names(field: dataclasses.Field) -> list[str]:
    """The built-in values of a field whose metadata has ``names`` (shown, not enforced)."""
    names = field.metadata.get("names", ())
    return list(names() if callable(names) else names)


def describe(
    field_name: str,
    *,
    full: bool = False,
    code: Callable[[str], str] = str,
    text: Callable[[str], str] = str,
) -> str:
    """A field's docstring on one line: its first paragraph, or with `full` every paragraph.

    A flag field named in single backquotes reads as its flag (```lr``` as ``--lr``). `code`
    formats the literals and names in backquotes, `text` the words between them (e.g. for
    Markdown).
    """
    paragraphs = SearchConfig.field_docs()[field_name].split("\n\n")
    words = " ".join(" ".join(p.split()) for p in (paragraphs if full else paragraphs[:1]))
    flags = {f.name for f in flag_fields()}
    parts, end = [], 0
    for match in _CODE.finditer(words):
        literal, reference = match.groups()
        if reference in flags:
            reference = flag_name(reference)
        parts += [text(words[end : match.start()]), code(literal or reference)]
        end = match.end()
    return "".join([*parts, text(words[end:])])


def add_config_flags(
    parser: argparse.ArgumentParser,
    description: str,
    skip: Collection[str] = (),
    show_defaults: bool = True,
) -> None:
    """Add the group `SETTINGS` of one flag per flag field of `SearchConfig` (less `skip`) to
    `parser`; `show_defaults` False where a flag not given keeps something else (a resumed
    search's own setting)."""
    group = parser.add_argument_group(SETTINGS, description)
    for field in flag_fields(skip):
        help_text = _help_case(describe(field.name).rstrip(".")).replace("%", "%%")
        default = shown_default(field) if show_defaults else None
        notes = [f"built-in: {', '.join(names)}"] if (names := builtin_names(field)) else []
        notes += [] if default is None else [f"default {default}"]
        if notes:
            help_text += f" ({'; '.join(notes)})"
        if field.type == "bool":
            group.add_argument(
                flag_name(field.name), action="store_true", default=None, help=help_text
            )
            continue
        if field.type not in FLAG_TYPES:
            raise TypeError(
                f"SearchConfig.{field.name}: no flag type for {field.type!r}; add it to "
                "FLAG_TYPES or give the field metadata {'flag': False}"
            )
        group.add_argument(
            flag_name(field.name),
            type=FLAG_TYPES[str(field.type)],
            choices=field.metadata.get("choices"),
            help=help_text,
        )


def _help_case(text: str) -> str:
    """``Task name`` -> ``task name``, as argparse's own help reads; ``CPUs`` stays."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings `args` gives: its values named as `SearchConfig` fields that are not None
    (a flag not given), so they win over a config file only where given."""
    names = set(SearchConfig.field_names())
    return {key: value for key, value in vars(args).items() if key in names and value is not None}
