"""The documents hold together: every relative link leads to a file (and a heading) that exists,
and every `rlnas <command>` they show is a command the CLI has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "benchmarks").glob("*.md")]
)

FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
COMMAND = re.compile(r"(?:^|[\s$(;&|`])rlnas[ \t]+([a-z][\w-]*)", re.MULTILINE)


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _prose(text: str) -> str:
    """The text without code blocks and inline code (where a link is not a link)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _code(text: str) -> list[str]:
    """Code blocks and inline code spans."""
    return [m.group(0) for m in FENCE.finditer(text)] + INLINE_CODE.findall(FENCE.sub("", text))


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings: lower case, punctuation dropped, spaces
    to hyphens; a repeated heading gets -1, -2, ..."""
    anchors: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def test_the_documents_are_found():
    names = {_name(p) for p in DOCUMENTS}
    assert {"README.md", "docs/README.md", "benchmarks/README.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_relative_links_lead_somewhere(document: Path):
    broken = []
    for target in LINK.findall(_prose(document.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {_name(linked)}")
    assert not broken, f"{_name(document)}: " + "; ".join(broken)


@pytest.fixture(scope="module")
def commands() -> set[str]:
    from search.cli import build_parser

    (subparsers,) = (
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    return set(subparsers.choices)


def _commands_shown(document: Path) -> set[str]:
    text = document.read_text(encoding="utf-8")
    return {command for code in _code(text) for command in COMMAND.findall(code)}


def test_the_readme_shows_its_commands():
    assert {"search", "resume", "ui", "export"} <= _commands_shown(ROOT / "README.md")


@pytest.mark.parametrize("document", DOCUMENTS, ids=_name)
def test_commands_shown_exist(document: Path, commands: set[str]):
    unknown = _commands_shown(document) - commands
    assert not unknown, f"{_name(document)} shows commands rlnas does not have: {sorted(unknown)}"
