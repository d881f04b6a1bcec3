"""data/files.py is the one atomic file writer: no module defines another, and train/'s name is the same."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import rlhfops

SRC = Path(rlhfops.__file__).parent
ATOMIC = re.compile(r"atomic_(write|output)|write_atomic", re.I)


def atomic_writers(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == SRC / "data" / "files.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and ATOMIC.search(node.name):
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return found


def test_one_atomic_writer():
    assert atomic_writers(SRC) == []
    from rlhfops.data import files
    from rlhfops.train import rundir

    assert rundir.atomic_write_text is files.atomic_write_text


def test_the_guard_sees_a_second_writer(tmp_path):
    (tmp_path / "m.py").write_text(
        "def atomic_write_text(p, t):\n    pass\ndef write_rows(p, r):\n    pass\n"
    )
    assert atomic_writers(tmp_path) == ["m.py:1 atomic_write_text"]


def test_eval_result_without_workspace_goes_through_the_atomic_writer(tmp_path, monkeypatch):
    from rlhfops.evaluate import run

    class Result:
        meta = {"kind": "success"}
        items: list = []
        notes: list = []
        path = None

    calls = []
    monkeypatch.setattr(run, "atomic_write_text", lambda p, t: calls.append(p) or Path(p))
    res = Result()
    run._store(res, None, tmp_path / "sub" / "result.json", [], suite_digest="x", judge="rule")
    assert calls == [tmp_path / "sub" / "result.json"] and res.path == calls[0]
    monkeypatch.undo()
    run._store(res, None, tmp_path / "sub" / "result.json", [], suite_digest="x", judge="rule")
    import json

    assert json.loads((tmp_path / "sub" / "result.json").read_text())["meta"] == {"kind": "success"}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["result.json"]  # no temp file left
