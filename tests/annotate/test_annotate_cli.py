"""The annotation commands end to end: raters add, pairs import / generate, calibration, prefs export,
demos import / export."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from shared_helpers import make_workspace
from web_helpers import PEOPLE

from rlhfops.annotate.queue import fetch_next, submit_label
from rlhfops.cli.main import main
from rlhfops.errors import UserError


@pytest.fixture
def cli_ws(sqlite_backend: str, tmp_path: Path, monkeypatch):
    ws = make_workspace(tmp_path / "ws", PEOPLE)
    monkeypatch.chdir(ws.root)
    yield ws
    ws.close()


def _run(capsys, *argv: str) -> str:
    main(list(argv))
    return capsys.readouterr().out


def _write_pairs(path: Path, n: int) -> Path:
    """``n`` pairs, the good reply as A on even prompts and as B on odd ones (so unanimous raters still
    give Krippendorff's alpha a defined value)."""
    rows = [
        {"prompt": f"p{i}", "response_a": f"good {i}", "response_b": f"bad {i}"}
        if i % 2 == 0
        else {"prompt": f"p{i}", "response_a": f"bad {i}", "response_b": f"good {i}"}
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_raters_pairs_calibration_export(cli_ws, capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert _run(capsys, "raters", "add", "nina", "--password-stdin") == "account nina created\n"
    assert ("nina", "rater") in cli_ws.people()
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    token = _run(capsys, "raters", "token", "nina", "--password-stdin").strip()
    assert token.startswith("rlh_")
    from rlhfops.annotate.accounts import account_for_token

    assert account_for_token(cli_ws, token).name == "nina"
    assert _run(capsys, "raters", "revoke", "nina") == "revoked 1 token(s) and 0 web session(s) of nina\n"
    assert account_for_token(cli_ws, token) is None
    f = _write_pairs(tmp_path / "pairs.jsonl", 4)
    assert _run(capsys, "pairs", "import", str(f), "--k", "2") == "queued 4 pair(s) (0 already queued)\n"
    assert _run(capsys, "pairs", "import", str(f)) == "queued 0 pair(s) (4 already queued)\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "response_a": "y"}\n')
    with pytest.raises(SystemExit) as ex:
        main(["pairs", "import", str(bad)])
    assert ex.value.code == 2 and "bad.jsonl:1:response_b" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["calibration", "start", "--n", "2", "--as", "rita"])  # not the annotation lead
    assert "annotation-lead" in capsys.readouterr().err
    assert _run(capsys, "calibration", "start", "--n", "2", "--as", "lena") == "calibration round 1 started\n"
    raters = ["rita", "ravi", "rosa", "nina"]
    for r in raters:
        for _ in range(2):
            item = fetch_next(cli_ws, r)
            submit_label(cli_ws, r, item.item_id, "left" if item.left.startswith("good") else "right")
    out = _run(capsys, "calibration", "result")
    assert out.startswith("round 1: passed: overall agreement 100%")
    for r in raters[:2]:
        while (item := fetch_next(cli_ws, r)) is not None:
            submit_label(cli_ws, r, item.item_id, "left" if item.left.startswith("good") else "right")
    out = _run(capsys, "prefs", "export", str(tmp_path / "prefs.jsonl"), "--as", "lena")
    assert out.startswith(f"wrote 4 pair(s) to {tmp_path / 'prefs.jsonl'}")
    rows = [json.loads(x) for x in (tmp_path / "prefs.jsonl").read_text().splitlines()]
    assert {r["chosen"][:4] for r in rows} == {"good"}
    # another tool's format through the CLI (issue 22): the option reaches the writer
    vendor = tmp_path / "openai.jsonl"
    out = _run(capsys, "prefs", "export", str(vendor), "--format", "openai-preference", "--as", "lena")
    assert out.startswith(f"wrote 4 pair(s) to {vendor}")
    first = json.loads(vendor.read_text().splitlines()[0])
    assert set(first) == {"input", "preferred_output", "non_preferred_output"}
    assert first["preferred_output"][0]["content"].startswith("good")
    with pytest.raises(SystemExit) as ex:
        main(["prefs", "export", str(tmp_path / "x.jsonl"), "--format", "alpaca", "--as", "lena"])
    assert ex.value.code == 2 and not (tmp_path / "x.jsonl").exists()
    assert "not a prefs export format" in capsys.readouterr().err


def test_demos_import_and_export(cli_ws, capsys, tmp_path: Path) -> None:
    from rlhfops.annotate.demos import demo_prompts, review_demo, save_demo

    f = tmp_path / "prompts.jsonl"
    f.write_text('{"prompt": "How do I return shoes?"}\n{"prompt": "Where is my parcel?"}\n')
    assert _run(capsys, "demos", "import", str(f)) == "queued 2 prompt(s) (0 already queued)\n"
    items = demo_prompts(cli_ws)
    d1 = save_demo(cli_ws, "erin", items[0]["item_id"], "Send them back within 30 days.")
    d2 = save_demo(cli_ws, "dora", items[1]["item_id"], "It is on its way.")
    review_demo(cli_ws, "dora", d1.id, True)
    with pytest.raises(UserError, match="dora wrote it; another reviewer"):  # nobody accepts their own
        review_demo(cli_ws, "dora", d2.id, True)
    out = _run(capsys, "demos", "export", str(tmp_path / "demos.jsonl"), "--as", "dora")
    assert out.startswith("wrote 1 demonstration(s)")
    rows = [json.loads(x) for x in (tmp_path / "demos.jsonl").read_text().splitlines()]
    assert rows == [{"prompt": "How do I return shoes?", "completion": "Send them back within 30 days."}]
    from rlhfops.data.schema import load_demos

    assert len(load_demos(tmp_path / "demos.jsonl")) == 1
    # the format follows the extension: demos.parquet is Parquet with the same rows
    import pyarrow.parquet as pq

    _run(capsys, "demos", "export", str(tmp_path / "demos.parquet"), "--as", "dora")
    assert pq.read_table(tmp_path / "demos.parquet").to_pylist() == rows


def test_pairs_generate_with_a_tiny_model(cli_ws, capsys, tmp_path: Path) -> None:
    from rlhfops.models.tiny import make_tiny_model_dir

    model = make_tiny_model_dir(tmp_path / "tiny", seed=1)
    f = tmp_path / "prompts.jsonl"
    f.write_text('{"prompt": "hello there"}\n{"prompt": "what is up"}\n')
    out = _run(
        capsys,
        "pairs",
        "generate",
        "--model",
        str(model),
        "--prompts",
        str(f),
        "-n",
        "2",
        "--max-new-tokens",
        "8",
        "--seed",
        "3",
    )
    assert out == "sampled 2 pair(s); queued 2 (0 already queued)\n"
    item = fetch_next(cli_ws, "rita", gold_rate=0)
    assert item.prompt in ("hello there", "what is up") and item.left != item.right


def test_serve_starts_the_app(cli_ws, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    import httpx
    from web_helpers import free_port

    from rlhfops.annotate.accounts import create_token, set_account

    set_account(cli_ws, "root", "a long password", is_admin=True)
    token = create_token(cli_ws, "root")
    port = free_port()
    exe = Path(sys.executable).with_name("rlhfops")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port)],
        cwd=cli_ws.root,
        env={**os.environ, "RLHFOPS_WORKSPACE": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert r.status_code == 200 and "Sign in" in r.text
        assert httpx.get(f"http://127.0.0.1:{port}/api/next").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 401  # admins only
        admin = {"Authorization": f"Bearer {token}"}
        schema = httpx.get(f"http://127.0.0.1:{port}/openapi.json", headers=admin).json()
        assert "/api/labels" in schema["paths"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_prefs_export_holds_the_specs_min_agreement_and_filters_batches(
    cli_ws, capsys, tmp_path: Path
) -> None:
    """The CLI applies the spec's gate.min_agreement as the lead's page does (no file without --reason;
    the reason is recorded), and --batch reaches the export."""
    from rlhfops.annotate.export import spec_min_agreement

    rows = [json.loads(x) for x in _write_pairs(tmp_path / "all.jsonl", 6).read_text().splitlines()]
    (tmp_path / "r1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    (tmp_path / "r2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[4:]))
    _run(capsys, "pairs", "import", str(tmp_path / "r1.jsonl"), "--k", "2", "--batch", "r1")
    _run(capsys, "pairs", "import", str(tmp_path / "r2.jsonl"), "--k", "2", "--batch", "r2")
    for r, contrary in (("rita", set()), ("ravi", {"p0", "p1", "p2"})):  # ravi disagrees on 3 of r1's 4
        while (item := fetch_next(cli_ws, r)) is not None:
            good = "left" if item.left.startswith("good") else "right"
            bad = "right" if good == "left" else "left"
            submit_label(cli_ws, r, item.item_id, bad if item.prompt in contrary else good)
    need = spec_min_agreement(cli_ws)
    assert need is not None
    out_file = tmp_path / "prefs.jsonl"
    with pytest.raises(SystemExit) as ex:
        main(["prefs", "export", str(out_file), "--as", "lena"])
    err = capsys.readouterr().err
    assert ex.value.code == 2 and f"below the spec's min_agreement {need}" in err and not out_file.exists()
    out = _run(
        capsys,
        "prefs",
        "export",
        str(out_file),
        "--reason",
        "pilot batch, guidelines v2 next",
        "--as",
        "lena",
    )
    art = cli_ws.artifact(out.strip().splitlines()[-1].split()[-1])
    assert art.meta["below_min_agreement"]["reason"] == "pilot batch, guidelines v2 next"
    out = _run(capsys, "prefs", "export", str(tmp_path / "r2-only.jsonl"), "--batch", "r2", "--as", "lena")
    assert out.startswith("wrote 2 pair(s)")  # r2's labels agree: above the bar, no reason needed
    assert {json.loads(x)["prompt"] for x in (tmp_path / "r2-only.jsonl").read_text().splitlines()} == {
        "p4",
        "p5",
    }
