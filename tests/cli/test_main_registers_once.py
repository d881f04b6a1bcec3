"""The command groups are registered once per process, however often ``main()`` runs in it (issue 21: typer
appends on every ``add_typer``, so each in-process call used to grow the tree the next call rebuilt)."""

from __future__ import annotations

import typer

from rlhfops import __version__
from rlhfops.cli import main as cli_main


def _tree() -> tuple[list[str], list[str]]:
    app = cli_main.app
    groups = [g.name or g.typer_instance.info.name for g in app.registered_groups]
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    return groups, commands


def test_repeated_main_calls_keep_one_command_tree(capsys) -> None:
    cli_main.main(["--version"])
    first = _tree()
    assert "data" in first[0] and "demo" in first[1]
    assert len(set(first[0])) == len(first[0]) and len(set(first[1])) == len(first[1])
    for _ in range(3):
        cli_main.main(["--version"])
    assert _tree() == first
    # and the tree the CLI parses has each group once
    names = list(typer.main.get_command(cli_main.app).commands)
    assert len(names) == len(set(names)) and "gate" in names
    assert capsys.readouterr().out.splitlines() == [__version__] * 4
