"""The console entry point keeps every exit code: typer.Exit(n), UserError (2), usage errors (2)."""

from __future__ import annotations

import pytest
import typer

from rlhfops.cli import main as cli_main


@pytest.fixture
def app(monkeypatch):
    app = typer.Typer()

    @app.command()
    def stop(code: int = 0) -> None:
        raise typer.Exit(code)

    @app.command()
    def fine() -> None:
        typer.echo("ok")

    monkeypatch.setattr(cli_main, "app", app)
    monkeypatch.setattr(cli_main, "_register", lambda: None)
    return app


@pytest.mark.parametrize("code", [3, 1])
def test_typer_exit_code_reaches_the_shell(app, code):
    with pytest.raises(SystemExit) as ex:
        cli_main.main(["stop", "--code", str(code)])
    assert ex.value.code == code


def test_success_exits_normally(app, capsys):
    cli_main.main(["fine"])  # no SystemExit at all
    cli_main.main(["stop", "--code", "0"])
    assert capsys.readouterr().out == "ok\n"


def test_usage_error_is_two(app):
    with pytest.raises(SystemExit) as ex:
        cli_main.main(["stop", "--code", "x"])
    assert ex.value.code == 2
