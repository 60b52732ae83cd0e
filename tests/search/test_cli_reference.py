"""docs/cli.md is what `search.cli_reference` renders from the parser."""

from __future__ import annotations

from search.cli_reference import DOCS_FILE, REGENERATE, render_markdown
from search.config_flags import file_only_fields, flag_fields, flag_name


def test_docs_cli_md_is_up_to_date():
    assert DOCS_FILE.exists(), f"{DOCS_FILE} is missing: run `{REGENERATE}`"
    assert DOCS_FILE.read_text() == render_markdown(), (
        f"{DOCS_FILE} differs from what the parser renders: run `{REGENERATE}`"
    )


def test_the_reference_has_every_command_and_setting():
    text = render_markdown()
    commands = ("search", "resume", "bench", "list", "show", "leaderboard", "ui", "spaces")
    for command in (*commands, "tasks"):
        assert f"\n## rlnas {command}\n" in text
    for field in flag_fields():
        assert f"| `{flag_name(field.name)}" in text
    for field in file_only_fields():
        assert f"| `{field.name}` |" in text
    assert "| `--keep {confirmed,best}` | `confirmed` |" in text
