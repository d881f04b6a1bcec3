"""The ``rlhfops`` command. Thin: each command parses, calls one function and prints its result.

Sub-command groups live in their own modules (``rlhfops.cli.<group>``) and are registered below.
Errors the user caused (:class:`rlhfops.errors.UserError`) print one line and exit 2.
"""

from __future__ import annotations

import logging
import sys

import typer

from rlhfops import __version__
from rlhfops.cli import annotate as annotate_cli
from rlhfops.cli import data as data_cli
from rlhfops.cli import demo as demo_cli
from rlhfops.cli import evaluate as evaluate_cli
from rlhfops.cli import gate as gate_cli
from rlhfops.cli import monitor as monitor_cli
from rlhfops.cli import spec as spec_cli
from rlhfops.cli import train as train_cli
from rlhfops.cli import workspace as workspace_cli
from rlhfops.data.files import is_write_failure, output_error
from rlhfops.errors import UserError

app = typer.Typer(
    name="rlhfops",
    help="RLHF as an operation: spec, demonstrations, preferences, reward model, PPO/DPO, red team, gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def _register() -> None:
    """Add every command group to the root app (each module defines ``app`` or ``register(app)``), once per
    process: typer appends on every ``add_typer``, so registering again on each in-process ``main()`` call
    (the tests make hundreds) grew the command tree it rebuilds per call, and each call cost more than the
    last (~14 ms per copy; issue 21)."""
    if app.registered_groups:
        return
    app.add_typer(data_cli.app, name="data")
    app.add_typer(train_cli.app, name="train")
    app.command("demo")(demo_cli.demo)
    workspace_cli.register(app)  # init, status, lineage, override, db, artifact
    spec_cli.register(app)  # spec, people, baseline
    annotate_cli.register(app)  # serve, pairs, prefs, calibration
    evaluate_cli.register(app)  # eval run, eval compare
    gate_cli.register(app)  # gate evaluate/sign/log, promote, report
    monitor_cli.register(app)  # monitor ingest/drift, triggers


class _ToStderr(logging.Filter):
    """Sends a library's log record to stderr instead of the handlers it set up (returns False for them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        sys.stderr.write(f"[{record.name}] {record.levelname}: {record.getMessage()}\n")
        return False


# Libraries that log to stdout: DeepSpeed's logger writes to sys.stdout (deepspeed/utils/logging.py), and its
# first import (accelerate imports it whenever it is installed) warns "Setting accelerator to CPU", which
# landed inside a command's printed result. stdout carries the command's result; their lines go to stderr.
STDOUT_LOGGERS = ("DeepSpeed",)


def library_logs_to_stderr() -> None:
    """Route the loggers in ``STDOUT_LOGGERS`` to stderr; idempotent. The filter sits on the logger itself, so
    it holds for handlers the library adds later (DeepSpeed adds its stdout handler at import)."""
    for name in STDOUT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ToStderr) for f in logger.filters):
            logger.addFilter(_ToStderr())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    library_logs_to_stderr()
    _register()
    try:
        # without standalone mode click returns (does not raise) a typer.Exit's code: pass it on
        code = app(args=argv, standalone_mode=False)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as err:  # click usage errors (typer vendors its own click) carry their exit code
        if isinstance(err, _click_exceptions()):
            err.show()
            sys.exit(err.exit_code)
        if is_write_failure(err):  # read-only directory, disk full... where no writer named it: one line
            out = output_error(None, err, atomic=False)  # type: ignore[arg-type]  # is an OSError
            typer.echo(f"error: {out}", err=True)
            sys.exit(out.exit_code)
        raise
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        sys.exit(code)


def _click_exceptions() -> tuple[type[BaseException], ...]:
    import click  # a second CLI library beside typer's own (typer._click): loaded only on an error

    kinds: list[type[BaseException]] = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException as TyperClickException

        kinds.append(TyperClickException)
    except ImportError:  # older typer uses click itself
        pass
    return tuple(kinds)


if __name__ == "__main__":
    main()
