"""Issue 16, part 9: a read-only output directory or a full disk gives ONE line naming the file and the
errno (ENOSPC, EACCES, EROFS), exit 2, and nothing written or half-written.

A full disk is simulated in-process: the writer's ``open`` returns a file whose writes fail with ENOSPC
after some bytes (so a temporary file really is half-written), or the Parquet writer's ``write_table``
raises it. A read-only directory is simulated by ``mkstemp`` failing as the kernel would (the tests may
run as root, for whom ``chmod 0555`` changes nothing); when not root, a real read-only directory is used
too.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
from pathlib import Path

import pytest
import typer
from shared_helpers import run_cli

import rlhfops.data.files as files_mod
import rlhfops.data.io as io_mod
from rlhfops.cli import main as cli_main
from rlhfops.cli.main import main
from rlhfops.data.files import OutputError, atomic_output, atomic_write_text, output_error
from rlhfops.datasets import hh_rlhf_harmless_path


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


class _FillingFile:
    """A text file that accepts ``room`` characters, writes part of the next chunk, then fails: ENOSPC."""

    def __init__(self, fh, room: int) -> None:
        self._fh, self._room = fh, room

    def write(self, s: str) -> int:
        if len(s) > self._room:
            self._fh.write(s[: self._room])
            self._fh.flush()
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(s)
        return self._fh.write(s)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

    def close(self) -> None:
        self._fh.close()


def _disk_fills_after(monkeypatch, module, room: int, seen: list[Path]) -> None:
    real_open = builtins.open

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        if "w" in mode:
            seen.append(Path(file))
            return _FillingFile(fh, room)
        return fh

    monkeypatch.setattr(module, "open", fake_open, raising=False)


ENOSPC_TAIL = (
    "cannot write: No space left on device (ENOSPC); free some space and run it again; nothing was written"
)


def _import(out_file: Path, *extra: str) -> list[str]:
    return [
        "data",
        "import",
        "--format",
        "hh-rlhf",
        str(hh_rlhf_harmless_path()),
        "--out",
        str(out_file),
        *extra,
    ]


def test_data_import_disk_full_leaves_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_file = out_dir / "prefs.jsonl"
    seen: list[Path] = []
    _disk_fills_after(monkeypatch, io_mod, 10_000, seen)
    code, out, err = run_cli(_import(out_file), capsys)
    assert code == 2 and out == ""
    assert _one_error_line(err) == f"error: {out_file}: {ENOSPC_TAIL}"
    assert seen and seen[0].parent == out_dir  # the write really started (a temporary file, half-written)
    assert list(out_dir.iterdir()) == []  # ... and it is gone


def test_data_import_disk_full_keeps_the_old_file(tmp_path: Path, capsys, monkeypatch) -> None:
    out_file = tmp_path / "prefs.jsonl"
    out_file.write_text('{"old": true}\n', encoding="utf-8")
    _disk_fills_after(monkeypatch, io_mod, 10_000, [])
    code, _, err = run_cli(_import(out_file, "--force"), capsys)
    assert code == 2 and _one_error_line(err) == f"error: {out_file}: {ENOSPC_TAIL}"
    assert out_file.read_text(encoding="utf-8") == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefs.jsonl"]


def test_data_import_with_room_writes_everything(tmp_path: Path, capsys, monkeypatch) -> None:
    """The other side: the same writer with enough room writes the whole file."""
    out_file = tmp_path / "prefs.jsonl"
    _disk_fills_after(monkeypatch, io_mod, 100_000_000, [])
    code, out, err = run_cli(_import(out_file), capsys)
    assert (code, err) == (0, "") and out.startswith(f"imported 1495 of 1500 rows to {out_file}")
    assert len(out_file.read_text(encoding="utf-8").splitlines()) == 1495


@pytest.mark.parametrize(
    ("code", "tail"),
    [
        (
            errno.EACCES,
            "Permission denied (EACCES); you may not write there; fix the permissions or write it",
        ),
        (errno.EROFS, "Read-only file system (EROFS); the file system is read-only; write it elsewhere"),
    ],
)
def test_data_import_read_only_directory(tmp_path: Path, capsys, monkeypatch, code: int, tail: str) -> None:
    out_dir = tmp_path / "ro"
    out_dir.mkdir()

    def refused(*args, dir=None, **kwargs):  # noqa: A002  # mkstemp's own parameter name
        raise OSError(code, os.strerror(code), str(dir))

    monkeypatch.setattr(files_mod.tempfile, "mkstemp", refused)
    out_file = out_dir / "prefs.parquet"
    rc, out, err = run_cli(_import(out_file), capsys)
    assert rc == 2 and out == ""
    assert _one_error_line(err).startswith(f"error: {out_file}: cannot write: {tail}")
    assert list(out_dir.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0555 directory anyway")
def test_data_import_real_read_only_directory(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    out_dir.chmod(0o555)
    try:
        rc, _, err = run_cli(_import(out_dir / "prefs.jsonl"), capsys)
    finally:
        out_dir.chmod(0o755)
    assert rc == 2 and "(EACCES)" in _one_error_line(err)
    assert list(out_dir.iterdir()) == []


# ---- monitor ingest: the Parquet batch writer fails --------------------------------------------------


def test_monitor_ingest_disk_full(tmp_path: Path, capsys, monkeypatch) -> None:
    import pyarrow.parquet as pq

    from rlhfops.workspace import Workspace, init_workspace

    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "alice")
    root = tmp_path / "ws"
    init_workspace(root).close()
    monkeypatch.chdir(root)
    rows = [{"prompt": f"q{i}", "response": "a", "model_id": "m", "time": "2026-01-01"} for i in range(5)]
    log = tmp_path / "prod.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    store_before = sorted(p.name for p in (root / "artifacts").rglob("*"))

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    code, _, err = run_cli(["monitor", "ingest", str(log)], capsys)
    line = _one_error_line(err)
    assert code == 2
    assert line.startswith("error: ") and line.endswith(f"prod.production.parquet: {ENOSPC_TAIL}")
    with Workspace.open(root) as ws:
        assert ws.artifacts() == []
    assert sorted(p.name for p in (root / "artifacts").rglob("*")) == store_before


# ---- the helper itself, and the entry point's net for writers that do not use it ------------------------


def test_atomic_output_disk_full_at_flush(tmp_path: Path, monkeypatch) -> None:
    """A full disk often shows only when the data is flushed (delayed allocation): still one line."""
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files_mod.os, "fsync", full)
    with pytest.raises(OutputError) as info:
        atomic_write_text(target, "new " * 1000)
    assert str(info.value) == f"{target}: {ENOSPC_TAIL}"
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_atomic_output_other_errors_pass_unchanged(tmp_path: Path) -> None:
    """Only refused writes become OutputError; a bug (or a missing input) keeps its own type."""
    target = tmp_path / "x.txt"
    with pytest.raises(FileNotFoundError):
        with atomic_output(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "input.jsonl")
    with pytest.raises(ValueError):
        with atomic_output(target):
            raise ValueError("bug")
    assert list(tmp_path.iterdir()) == []
    atomic_write_text(target, "ok")
    assert target.read_text(encoding="utf-8") == "ok" and list(tmp_path.iterdir()) == [target]


def test_output_error_without_a_path_names_the_file() -> None:
    err = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "/runs/sft/metrics.jsonl")
    assert str(output_error(None, err, atomic=False)) == (
        f"/runs/sft/metrics.jsonl: cannot write: {os.strerror(errno.EDQUOT)} (EDQUOT); free some space "
        "(disk quota) and run it again"
    )


@pytest.fixture
def failing_app(monkeypatch):
    app = typer.Typer()

    @app.command()
    def write(code: int = errno.ENOSPC) -> None:
        raise OSError(code, os.strerror(code), "runs/sft-1/checkpoints/step-000010/model.safetensors")

    @app.command()
    def other() -> None:
        raise OSError(errno.ENOENT, "No such file or directory", "missing.yaml")

    monkeypatch.setattr(cli_main, "app", app)
    monkeypatch.setattr(cli_main, "_register", lambda: None)
    return app


@pytest.mark.parametrize(("code", "name"), [(errno.ENOSPC, "ENOSPC"), (errno.EROFS, "EROFS")])
def test_entry_point_turns_a_refused_write_into_one_line(failing_app, capsys, code: int, name: str) -> None:
    rc, _, err = run_cli(["write", "--code", str(code)], capsys)
    assert rc == 2
    where = "runs/sft-1/checkpoints/step-000010/model.safetensors"
    assert _one_error_line(err).startswith(f"error: {where}: cannot write: {os.strerror(code)} ({name});")


def test_entry_point_leaves_other_os_errors_alone(failing_app) -> None:
    with pytest.raises(FileNotFoundError):
        main(["other"])


def test_no_temp_files_left_by_a_clean_write(tmp_path: Path) -> None:
    io_mod.write_rows(tmp_path / "a.jsonl.gz", [{"prompt": "x"}])
    io_mod.write_rows(tmp_path / "a.json", [{"prompt": "x"}])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.jsonl.gz"]
