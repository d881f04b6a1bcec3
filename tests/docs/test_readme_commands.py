"""Every `rlhfops ...` line in the README's shell blocks names a real command and only options that
command has, and every `--set key=value` names a real config key of that training stage."""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_commands() -> list[tuple[int, list[str]]]:
    """(line number, argv after `rlhfops`) for each command line in ```bash blocks (continuations joined,
    comments and `&& ...` tails dropped)."""
    out: list[tuple[int, list[str]]] = []
    in_block, pending, start = False, "", 0
    for n, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            in_block = line.strip() in ("```bash", "```sh") if not in_block else False
            continue
        if not in_block:
            continue
        text = line.split(" #", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if pending:
            text, start = pending + " " + text.strip(), start
        else:
            start = n
        if text.endswith("\\"):
            pending = text[:-1]
            continue
        pending = ""
        text = text.split("&&", 1)[0].strip()
        if text.startswith("rlhfops "):
            out.append((start, shlex.split(text)[1:]))
    return out


COMMANDS = _readme_commands()


def test_the_readme_has_the_five_plays_commands():
    assert len(COMMANDS) >= 30
    firsts = {argv[0] for _, argv in COMMANDS}
    for cmd in ("init", "spec", "train", "pairs", "prefs", "eval", "gate", "promote", "monitor", "serve"):
        assert cmd in firsts, cmd


@functools.cache
def _cli():
    """The click command tree of `rlhfops`, built once (typer rebuilds it on every call: ~2.5 CPU s)."""
    import typer

    from rlhfops.cli.main import _register, app

    _register()
    return typer.main.get_command(app)


@pytest.mark.parametrize("line,argv", COMMANDS, ids=[f"README:{n}" for n, _ in COMMANDS])
def test_readme_command_exists_with_its_options(line, argv):
    cmd = _cli()
    path = ["rlhfops"]
    rest = list(argv)
    while getattr(cmd, "commands", None) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        assert name in cmd.commands, f"README:{line}: `{' '.join(path)} {name}` is not a command"
        cmd, path = cmd.commands[name], [*path, name]
    if getattr(cmd, "commands", None):  # a group: runnable by itself only when it says so
        assert cmd.invoke_without_command, f"README:{line}: `{' '.join(path)}` needs a subcommand"
    known = {opt for p in cmd.params for opt in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))}
    for tok in rest:
        if tok.startswith("-") and tok not in ("-", "--"):
            assert tok.split("=", 1)[0] in known, f"README:{line}: `{' '.join(path)}` has no option {tok}"
    if path[:2] == ["rlhfops", "train"]:
        from rlhfops.train.runner import STAGES

        fields = STAGES[path[2]].model_fields
        for i, tok in enumerate(rest):
            if tok == "--set":
                key = re.split(r"[=.]", rest[i + 1], maxsplit=1)[0]
                assert key in fields, f"README:{line}: train {path[2]} has no config key {key!r}"
