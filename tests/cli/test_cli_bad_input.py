"""Issue 16, parts 8 and 9: bad CLI input gives ONE line on stderr naming what and where, exit 2, and
nothing written. Each case runs the real entry point (``rlhfops.cli.main.main``) in a fresh workspace and
checks both sides of its rule."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from shared_helpers import run_cli


def _one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def _template_ws(tmp_path_factory) -> Path:
    """One initialised workspace per module (init takes seconds); each test gets a copy."""
    from rlhfops.workspace import Workspace, init_workspace

    root = tmp_path_factory.mktemp("template") / "ws"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RLHFOPS_DATABASE_URL", raising=False)
        init_workspace(root, template="support-replies").close()
        with Workspace.open(root) as ws:
            ws.add_person("alice", "annotation-lead", "alice")
    return root


@pytest.fixture
def ws_root(_template_ws: Path, tmp_path: Path, monkeypatch) -> Path:
    """A fresh SQLite workspace (support-replies spec) as the current directory; alice leads annotation."""
    monkeypatch.delenv("RLHFOPS_DATABASE_URL", raising=False)
    monkeypatch.delenv("RLHFOPS_WORKSPACE", raising=False)
    monkeypatch.setenv("RLHFOPS_USER", "alice")
    root = tmp_path / "ws"
    shutil.copytree(_template_ws, root)
    monkeypatch.chdir(root)
    return root


def _open(root: Path):
    from rlhfops.workspace import Workspace

    return Workspace.open(root)


def _write_pairs(path: Path, n: int) -> Path:
    rows = [{"prompt": f"p{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---- artifact refs: hex only (a LIKE wildcard must not match) ---------------------------------------


@pytest.mark.parametrize("wildcard", ["%", "_"])
def test_artifact_ref_with_a_like_wildcard_is_refused(
    ws_root: Path, tmp_path: Path, capsys, wildcard
) -> None:
    (tmp_path / "a.jsonl").write_text('{"prompt": "a"}\n', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"prompt": "b"}\n', encoding="utf-8")
    code, out, _ = run_cli(["artifact", "add", "dataset", str(tmp_path / "a.jsonl")], capsys)
    parent = out.strip()
    assert code == 0 and len(parent) == 64
    ref = parent[:3] + wildcard  # 4 characters: passes the length minimum
    code, out, err = run_cli(
        ["artifact", "add", "dataset", str(tmp_path / "b.jsonl"), "--parent", ref], capsys
    )
    line = _one_error_line(err)
    assert code == 2 and out == ""
    assert line == (
        f"error: artifact id {ref!r}: an id is hex digits (0-9, a-f), up to 64; give the id or a prefix "
        "of it (list them with `rlhfops artifact list`)"
    )
    with _open(ws_root) as ws:
        assert [a.id for a in ws.artifacts("dataset")] == [parent]  # b was not registered


def test_artifact_ref_hex_prefix_still_works(ws_root: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "a.jsonl").write_text('{"prompt": "a"}\n', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"prompt": "b"}\n', encoding="utf-8")
    parent = run_cli(["artifact", "add", "dataset", str(tmp_path / "a.jsonl")], capsys)[1].strip()
    code, out, err = run_cli(
        ["artifact", "add", "dataset", str(tmp_path / "b.jsonl"), "--parent", parent[:4].upper()], capsys
    )
    assert (code, err) == (0, "")
    with _open(ws_root) as ws:
        assert [c.id for c in ws.children(parent)] == [out.strip()]
        assert ws.resolve_id(parent[:4]) == parent
        for bad in (parent[:3] + "%", parent[:4] + "_", "zzzz", parent[:4] + " or 1"):
            with pytest.raises(Exception, match="hex digits"):
                ws.resolve_id(bad)


# ---- calibration start --n, pairs import --k -------------------------------------------------------


def _rounds(root: Path) -> int:
    from rlhfops.annotate.tx import transaction
    from rlhfops.workspace import annotation_tables as m

    with _open(root) as ws, transaction(ws) as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(m.CalibrationRound)))


@pytest.mark.parametrize("n", ["-5", "0", "1"])
def test_calibration_size_out_of_range(ws_root: Path, tmp_path: Path, capsys, n: str) -> None:
    assert run_cli(["pairs", "import", str(_write_pairs(tmp_path / "p.jsonl", 60))], capsys)[0] == 0
    code, _, err = run_cli(["calibration", "start", "--n", n], capsys)
    line = _one_error_line(err)
    assert code == 2
    assert line == (
        f"error: calibration start: --n {n}: must be at least 2 (the range of annotation.calibration_size)"
    )
    assert _rounds(ws_root) == 0


def test_calibration_size_at_the_edge_starts(ws_root: Path, tmp_path: Path, capsys) -> None:
    assert run_cli(["pairs", "import", str(_write_pairs(tmp_path / "p.jsonl", 2))], capsys)[0] == 0
    assert run_cli(["calibration", "start", "--n", "2"], capsys)[:2] == (0, "calibration round 1 started\n")
    assert _rounds(ws_root) == 1


def _stored_k(root: Path) -> list[int]:
    from rlhfops.annotate.tx import transaction
    from rlhfops.workspace import annotation_tables as m

    with _open(root) as ws, transaction(ws) as s:
        return sorted(int(k) for k in s.scalars(sa.select(m.Item.k)).all())


@pytest.mark.parametrize("k", ["0", "-3", "51"])
def test_pairs_import_k_out_of_range(ws_root: Path, tmp_path: Path, capsys, k: str) -> None:
    code, _, err = run_cli(["pairs", "import", str(_write_pairs(tmp_path / "p.jsonl", 2)), "--k", k], capsys)
    line = _one_error_line(err)
    assert code == 2
    assert line == f"error: pairs import: --k {k}: must be between 1 and 50 (the range of annotation.overlap)"
    assert _stored_k(ws_root) == []  # nothing queued


def test_pairs_generate_k_is_checked_before_sampling(ws_root: Path, tmp_path: Path, capsys) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "q"}\n', encoding="utf-8")
    argv = ["pairs", "generate", "--model", str(tmp_path / "no-model"), "--prompts", str(prompts), "--k", "0"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2  # refused before any model is looked for
    assert _one_error_line(err) == (
        "error: pairs generate: --k 0: must be between 1 and 50 (the range of annotation.overlap)"
    )


@pytest.mark.parametrize("k", ["1", "50"])
def test_pairs_import_k_at_the_edges_is_stored(ws_root: Path, tmp_path: Path, capsys, k: str) -> None:
    code, out, _ = run_cli(["pairs", "import", str(_write_pairs(tmp_path / "p.jsonl", 2)), "--k", k], capsys)
    assert (code, out) == (0, "queued 2 pair(s) (0 already queued)\n")
    assert _stored_k(ws_root) == [int(k), int(k)]


# ---- raters add: the password is checked before anything is written --------------------------------


def test_raters_add_short_password_writes_nothing(ws_root: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("7 chars\n"))
    code, _, err = run_cli(["raters", "add", "bob", "--password-stdin"], capsys)
    line = _one_error_line(err)
    assert code == 2 and line == "error: raters add bob: the password needs at least 8 characters"
    from rlhfops.annotate.accounts import accounts

    with _open(ws_root) as ws:
        assert "bob" not in {name for name, _ in ws.people()}
        assert [a.name for a in accounts(ws)] == []


def test_raters_add_password_at_the_minimum(ws_root: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("8 chars!\n"))
    assert run_cli(["raters", "add", "bob", "--password-stdin"], capsys)[:2] == (0, "account bob created\n")
    with _open(ws_root) as ws:
        assert ("bob", "rater") in ws.people()


def test_raters_add_unknown_role_writes_nothing(ws_root: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    code, _, err = run_cli(["raters", "add", "bob", "--role", "boss", "--password-stdin"], capsys)
    assert code == 2 and "role 'boss' unknown" in _one_error_line(err)
    from rlhfops.annotate.accounts import accounts

    with _open(ws_root) as ws:
        assert [a.name for a in accounts(ws)] == []


# ---- rlhfops.yaml: unknown keys ----------------------------------------------------------------------


def test_unknown_settings_key_is_refused_with_the_closest(ws_root: Path, capsys) -> None:
    settings = ws_root / "rlhfops.yaml"
    text = settings.read_text(encoding="utf-8")
    n_lines = len(text.splitlines())
    settings.write_text(text + "databse_url: postgresql://db/x\n", encoding="utf-8")
    code, _, err = run_cli(["people", "list"], capsys)
    line = _one_error_line(err)
    assert code == 2
    assert line == f"error: {settings}:{n_lines + 1}: unknown key 'databse_url'; did you mean 'database_url'?"


def test_known_sections_are_accepted(ws_root: Path, capsys) -> None:
    settings = ws_root / "rlhfops.yaml"
    settings.write_text(
        settings.read_text(encoding="utf-8") + "annotation:\n  overlap: 2\nmonitor: {}\njudge: {}\nweb: {}\n",
        encoding="utf-8",
    )
    assert run_cli(["people", "list"], capsys)[0] == 0


@pytest.mark.parametrize(
    ("section", "argv", "expected"),
    [
        (
            "annotation:\n  overlapp: 2\n",
            ["pairs", "import", "PAIRS"],
            "'annotation.overlapp'; did you mean 'overlap'?",
        ),
        (
            "monitor:\n  trigers_file: t.yaml\n",
            ["triggers", "rules"],
            "'monitor.trigers_file'; did you mean 'triggers_file'?",
        ),
    ],
)
def test_unknown_key_inside_a_section_names_the_closest(
    ws_root: Path, tmp_path: Path, capsys, section: str, argv: list[str], expected: str
) -> None:
    settings = ws_root / "rlhfops.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + section, encoding="utf-8")
    pairs = str(_write_pairs(tmp_path / "p.jsonl", 2))
    code, _, err = run_cli([pairs if a == "PAIRS" else a for a in argv], capsys)
    assert code == 2
    assert _one_error_line(err).endswith(f": unknown key {expected}")
    assert _stored_k(ws_root) == []


def test_unknown_judge_key_names_the_closest(ws_root: Path) -> None:
    from rlhfops.errors import ConfigError
    from rlhfops.judge.settings import settings_from_workspace

    settings = ws_root / "rlhfops.yaml"
    text = settings.read_text(encoding="utf-8")
    settings.write_text(text + "judge:\n  kind: rule\n  tie_margn: 0.1\n", encoding="utf-8")
    with _open(ws_root) as ws, pytest.raises(ConfigError) as info:
        settings_from_workspace(ws)
    assert str(info.value) == "rlhfops.yaml: unknown key 'judge.tie_margn'; did you mean 'tie_margin'?"
    settings.write_text(text + "judge:\n  kind: rule\n  tie_margin: 0.1\n", encoding="utf-8")
    with _open(ws_root) as ws:
        assert settings_from_workspace(ws).tie_margin == 0.1


def test_non_utf8_settings_file(ws_root: Path, capsys) -> None:
    settings = ws_root / "rlhfops.yaml"
    raw = settings.read_bytes()
    settings.write_bytes(raw + b"# caf\xe9\n")
    code, _, err = run_cli(["people", "list"], capsys)
    n_lines = raw.count(b"\n")
    assert code == 2
    assert _one_error_line(err) == (
        f"error: {settings}:{n_lines + 1}: not valid UTF-8 (byte offset {len(raw) + 5}); save it as UTF-8"
    )


# ---- spec.yaml that is not UTF-8 ---------------------------------------------------------------------


def test_non_utf8_spec_is_named_as_such(ws_root: Path, capsys) -> None:
    spec = ws_root / "spec.yaml"
    raw = spec.read_bytes()
    offset = raw.index(b"\n", 100) + 1  # the start of some line after the first
    line_no = raw.count(b"\n", 0, offset) + 1
    spec.write_bytes(raw[:offset] + b"# na\xefve caf\xe9\n" + raw[offset:])
    code, _, err = run_cli(["spec", "check"], capsys)
    assert code == 2
    assert _one_error_line(err) == (
        f"error: {spec}:{line_no}: (spec): not valid UTF-8 (byte offset {offset + 4}); save the file as UTF-8"
    )
    # the same spec saved as UTF-8 is fine
    spec.write_bytes(raw[:offset] + "# naïve café\n".encode() + raw[offset:])
    code, out, err = run_cli(["spec", "check"], capsys)
    assert (code, err) == (0, "") and ": OK (sha256 " in out


# ---- monitor ingest of non-UTF-8 bytes --------------------------------------------------------------

PROD = {"prompt": "Where is my order?", "response": "It ships today.", "model_id": "m1", "time": "2026-01-01"}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_monitor_ingest_non_utf8(ws_root: Path, tmp_path: Path, capsys, fmt: str) -> None:
    if fmt == "jsonl":
        good = json.dumps(PROD).encode()
        bad = json.dumps({**PROD, "prompt": "PLACEHOLDER"}).encode().replace(b"PLACEHOLDER", b"caf\xe9")
        data = good + b"\n" + good + b"\n" + bad + b"\n"
        byte = bad.index(b"\xe9") + 1
    else:
        data = b"prompt,response,model_id,time\nhi,ok,m1,2026-01-01\nhi,caf\xe9,m1,2026-01-01\n"
        byte = len(b"hi,caf") + 1
    path = tmp_path / f"prod.{fmt}"
    path.write_bytes(data)
    code, _, err = run_cli(["monitor", "ingest", str(path)], capsys)
    assert code == 2
    assert _one_error_line(err) == (
        f"error: {path}:3: not valid UTF-8 (byte {byte} of the line); save the file as UTF-8, nothing was"
        " imported"
    )
    from rlhfops.monitor.logs import log_artifacts

    with _open(ws_root) as ws:
        assert log_artifacts(ws) == [] and ws.artifacts() == []
    path.write_bytes(data.replace(b"\xe9", "é".encode()))  # the same file in UTF-8 is stored
    assert run_cli(["monitor", "ingest", str(path)], capsys)[0] == 0
    with _open(ws_root) as ws:
        assert len(log_artifacts(ws)) == 1
