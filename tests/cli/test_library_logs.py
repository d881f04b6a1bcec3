"""A library that logs to stdout (DeepSpeed) must not write into a command's printed result."""

from __future__ import annotations

import logging
import sys

from rlhfops.cli.main import STDOUT_LOGGERS, library_logs_to_stderr, main


def _stdout_handler(name: str) -> logging.Handler:
    """What deepspeed/utils/logging.py sets up at import: a handler on sys.stdout, propagation off."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(stream=sys.stdout)
    logger.addHandler(handler)
    logger.propagate = False
    return handler


def test_deepspeed_is_routed():
    assert "DeepSpeed" in STDOUT_LOGGERS


def test_a_cli_call_sends_the_stdout_logger_to_stderr(capsys):
    handler = _stdout_handler("DeepSpeed")
    try:
        main(["--version"])
        capsys.readouterr()
        logging.getLogger("DeepSpeed").warning("Setting accelerator to CPU.")
        out = capsys.readouterr()
        assert "Setting accelerator" not in out.out
        assert "[DeepSpeed] WARNING: Setting accelerator to CPU." in out.err
    finally:
        logging.getLogger("DeepSpeed").removeHandler(handler)


def test_an_unrouted_logger_keeps_its_stdout(capsys):
    """The other side: a logger not in the list is left as the library set it up."""
    name = "rlhfops-test-other-library"
    handler = _stdout_handler(name)
    try:
        library_logs_to_stderr()
        logging.getLogger(name).warning("kept")
        assert "kept" in capsys.readouterr().out
    finally:
        logging.getLogger(name).removeHandler(handler)


def test_routing_twice_adds_one_filter():
    library_logs_to_stderr()
    library_logs_to_stderr()
    assert len(logging.getLogger("DeepSpeed").filters) == 1
