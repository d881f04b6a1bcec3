"""The committed reference docs equal what the code renders (regenerate: python -m rlhfops.docs_gen)."""

from __future__ import annotations

from pathlib import Path

from rlhfops.docs_gen import command_tree, render_commands, render_configuration

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_configuration_reference_is_current():
    assert (DOCS / "configuration.md").read_text() == render_configuration(), (
        "docs/configuration.md is stale: run python -m rlhfops.docs_gen"
    )


def test_command_reference_is_current():
    assert (DOCS / "commands.md").read_text() == render_commands(), (
        "docs/commands.md is stale: run python -m rlhfops.docs_gen"
    )


def test_every_command_has_help():
    for path, text in command_tree():
        assert text, f"{path} has no help text"
