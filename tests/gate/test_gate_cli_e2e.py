"""End to end through the CLI on a tiny model: evaluate -> gate -> sign -> promote, refusal paths, log,
report; and concurrent appends to the decision log."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest
from gate_helpers import add_eval, concurrent_signer, fake_run_dir, passing_evals, token_of, train_chain
from shared_helpers import redteam_meta, who


def _plot_svg(html: str, plot_id: str) -> str:
    """The decoded SVG of the plot with ``id=plot_id`` in a report."""
    import base64
    import re

    m = re.search(rf'id="{plot_id}"><img alt="[^"]*" src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert m is not None, plot_id
    return base64.b64decode(m.group(1)).decode("utf-8")


@pytest.fixture
def tiny_ws(gws, tmp_path, monkeypatch):
    """The workspace with a tiny PPO model (real HF directory) whose run lives under <ws>/runs."""
    from rlhfops.models.tiny import make_tiny_model_dir

    tiny = make_tiny_model_dir(tmp_path / "tiny-policy", seed=3)
    run = fake_run_dir(gws.root / "runs", "ppo", tiny)
    ids = train_chain(gws, tmp_path / "runs", policy_dir=run / "final")
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    return gws, ids


def test_gate_cli_end_to_end(tiny_ws, tmp_path, cli, monkeypatch):
    ws, ids = tiny_ws
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(ws, "gina"))
    ppo = ids["ppo"][:12]
    # nothing evaluated yet: incomplete, sign refused (exit 2, one line), promote refused
    code, out, _ = cli(["gate", "evaluate", ppo])
    assert code == 0 and "INCOMPLETE" in out and "no red-team evaluation" in out
    assert cli(["gate", "evaluate", ppo, "--check"])[0] == 1
    code, _, err = cli(["gate", "sign", ppo, "--decision", "approve", "--reason", "fine", "--as", "gina"])
    assert code == 2 and "incomplete" in err and len(err.strip().splitlines()) == 1
    # a red-team failure: fail verdict
    add_eval(ws, tmp_path / "ev", redteam_meta(ids["ppo"], {"harmful_request": (55, 60)}), [ids["ppo"]])
    passing_evals(ws, tmp_path / "ev", ids["ppo"], baseline=ids["sft"])  # later red-team run supersedes
    code, out, _ = cli(["gate", "evaluate", ppo, "--json"])
    g = json.loads(out)
    assert code == 0 and g["verdict"] == "pass" and g["complete"] and len(g["evidence"]["superseded"]) == 1
    assert cli(["gate", "evaluate", ppo, "--check"])[0] == 0
    # the wrong person: with gina's token, and with his own
    code, _, err = cli(["gate", "sign", ppo, "--decision", "approve", "--reason", "fine", "--as", "frank"])
    assert code == 2 and "the API token belongs to 'gina', not 'frank'" in err
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(ws, "frank"))
    code, _, err = cli(["gate", "sign", ppo, "--decision", "approve", "--reason", "fine", "--as", "frank"])
    assert code == 2 and "does not have the role gate-owner" in err
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(ws, "gina"))
    code, _, err = cli(["promote", ppo, "--as", "gina"])
    assert code == 2 and "has no gate decision" in err
    code, out, _ = cli(
        ["gate", "sign", ppo, "--decision", "approve", "--reason", "meets all", "--as", "gina"]
    )
    assert code == 0 and "decision log entry 1: approve" in out
    sign_report = ws.root / "reports" / f"gate-{ppo}-0001.html"
    assert f"report: {sign_report}" in out and "meets all" in sign_report.read_text()
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(ws, "frank"))
    code, _, err = cli(["promote", ppo, "--as", "frank"])
    assert code == 2 and "promote: 'frank' does not have the role gate-owner" in err
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(ws, "gina"))
    code, out, _ = cli(["promote", ppo, "--as", "gina"])
    assert code == 0 and f"deployed: ppo-model {ids['ppo']}" in out
    code, out, _ = cli(["gate", "log"])
    assert code == 0 and "sign approve by gina" in out.replace(f" ppo-model {ppo}", "")
    assert "promote ppo-model" in out
    assert f"deployed: ppo-model {ids['ppo']} (entry 2" in out
    code, _, err = cli(["promote", ppo, "--as", "gina"])
    assert code == 2 and "already the deployed model" in err
    code, out, _ = cli(["gate", "log", "--verify"])
    assert code == 0 and "OK: 2 entries" in out
    code, head, _ = cli(["gate", "log", "--head"])
    assert code == 0 and head.strip() == json.loads(cli(["gate", "log", "--json"])[1])[-1]["hash"]
    code, out, _ = cli(["gate", "log", "--verify", "--head", head.strip()])
    assert code == 0 and "anchored head" in out
    # the report: written, registered, with the training curves found through the run directory
    out_html = tmp_path / "r" / "report.html"
    code, out, _ = cli(["report", ppo, "--out", str(out_html)])
    assert code == 0 and out_html.is_file() and "artifact" in out
    html = out_html.read_text()
    assert html.count("data:image/svg+xml;base64,") == 4 and "metrics.jsonl" in html
    curves = _plot_svg(html, "plot-curves")
    assert "KL to the reference" in curves and "reward (score)" in curves
    rep = ws.artifacts("report")
    assert len(rep) == 2 and all(r.parents[0] == ids["ppo"] for r in rep)  # the sign's and this one
    assert (
        "0001.html" in rep[0].name
        and rep[0].parents[1] == json.loads(cli(["gate", "log", "--json"])[1])[0]["hash"]
    )
    # status shows the deployed model (Play 5 evidence)
    code, out, _ = cli(["status", "--json"])
    play5 = json.loads(out)["plays"][4]
    assert any("promoted by gina" in e for e in play5["evidence"])
    # tampering is reported with the entry and exit 2
    log = ws.root / "gate" / "decisions.jsonl"
    log.write_bytes(log.read_bytes().replace(b"meets all", b"meets ALL"))
    code, _, err = cli(["gate", "log", "--verify"])
    assert code == 2 and "entry 1:" in err


def test_gate_cli_override_shows(tiny_ws, tmp_path, cli, monkeypatch):
    ws, ids = tiny_ws
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(ws, "gina"))
    passing_evals(ws, tmp_path / "ev", ids["ppo"], ci_low=0.4)
    ppo = ids["ppo"][:12]
    code, _, err = cli(["gate", "sign", ppo, "--decision", "approve", "--reason", "ok", "--as", "gina"])
    assert code == 2 and "needs a written reason" in err
    reason = "pilot with 5% of traffic, reviewed by legal"
    code, out, _ = cli(
        ["gate", "sign", ppo, "--decision", "approve", "--reason", reason, "--as", "gina", "--no-report"]
    )
    assert code == 0 and "OVERRIDE over failed thresholds: win_rate" in out
    code, out, _ = cli(["promote", ppo, "--as", "gina"])
    assert code == 0 and "override" in out
    code, out, _ = cli(["gate", "log"])
    assert out.count("OVERRIDE") == 2
    code, out, _ = cli(["report", ppo, "--no-register"])
    html = (ws.root / "reports" / f"gate-{ids['ppo'][:12]}.html").read_text()
    assert "override: approved over win_rate" in html and ws.artifacts("report") == []


def test_gate_sign_cli_writes_the_report_and_a_report_failure_keeps_the_decision(
    gws, tmp_path, cli, monkeypatch
):
    """gate_sign only decides; the command writes the report. A failing report warns and the entry stands."""
    import rlhfops.report.render as render
    from rlhfops.gate import log as dlog

    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "ev", ids["ppo"], baseline=ids["sft"])
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(gws, "gina"))
    ppo = ids["ppo"][:12]
    sign = ["gate", "sign", ppo, "--decision", "reject", "--as", "gina", "--reason"]

    def broken(*_a, **_k):
        raise RuntimeError("plotting backend missing")

    monkeypatch.setattr(render, "gate_report", broken)
    with pytest.warns(UserWarning, match="decision recorded, report not written: plotting backend missing"):
        code, out, _ = cli([*sign, "first look"])
    assert code == 0 and "decision log entry 1: reject" in out and "report:" not in out
    assert [e.get("reason") for e in dlog.entries(gws)] == ["first look"]
    monkeypatch.undo()
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(gws, "gina"))
    code, out, _ = cli([*sign, "second look", "--no-report"])
    assert code == 0 and "report:" not in out and gws.artifacts("report") == []
    code, out, _ = cli([*sign, "third look"])
    path = gws.root / "reports" / f"gate-{ppo}-0003.html"
    assert code == 0 and f"report: {path}" in out and "third look" in path.read_text()
    assert len(gws.artifacts("report")) == 1


def test_gate_log_concurrent_appends(gws, tmp_path):
    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "ev", ids["ppo"])
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    n = 6
    procs = [
        ctx.Process(target=concurrent_signer, args=(str(gws.root), ids["ppo"], tag, n, barrier))
        for tag in ("p1", "p2")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    from rlhfops.gate import log as dlog

    v = dlog.verify(gws)
    assert v.ok, v.problem
    entries = dlog.entries(gws)
    assert [e.seq for e in entries] == list(range(1, 2 * n + 1))
    assert sorted(e.get("reason") for e in entries) == sorted(
        f"{t} look {i}" for t in ("p1", "p2") for i in range(n)
    )
    assert len([a for a in gws.artifacts("decision")]) == 2 * n
    assert not [p for p in (gws.root / "gate").iterdir() if p.name.startswith(".decision-")]


def test_gate_report_escapes_evaluation_text(gws, tmp_path):
    from rlhfops.report.render import gate_report

    ids = train_chain(gws, tmp_path / "runs")
    hostile = "<script>alert('x')</script>"
    meta = redteam_meta(ids["ppo"], {hostile: (1, 2)})
    meta["redteam"][hostile]["failures"] = [{"id": "x1", "prompt": hostile, "response": "</td><b>bold</b>"}]
    add_eval(gws, tmp_path / "ev", meta, [ids["ppo"]])
    path, _ = gate_report(gws, ids["ppo"], tmp_path / "r.html", register=False)
    html = path.read_text()
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(" in html
    assert html.count("data:image/svg+xml;base64,") == 1  # only the red-team plot has data
    svg = _plot_svg(html, "plot-redteam")  # matplotlib escapes the label inside the SVG too
    assert "<script>" not in svg and "&lt;script&gt;" in svg


@pytest.mark.postgres
def test_gate_on_postgres(postgres_url, tmp_path, monkeypatch):
    import uuid

    import sqlalchemy as sa
    from gate_helpers import PEOPLE
    from shared_helpers import make_workspace

    from rlhfops.gate import log as dlog
    from rlhfops.gate.decide import deployed, gate_sign, promote

    schema = f"g_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_url else "?"
    monkeypatch.setenv("RLHFOPS_DATABASE_URL", f"{postgres_url}{sep}options=-csearch_path%3D{schema}")
    try:
        ws = make_workspace(tmp_path / "ws", PEOPLE, play1=True)
        assert ws.database_url.startswith("postgresql")
        ids = train_chain(ws, tmp_path / "runs")
        passing_evals(ws, tmp_path / "ev", ids["ppo"], ci_low=0.5)
        with pytest.raises(Exception, match="does not pass the gate"):
            promote(ws, ids["ppo"], who(ws, "gina"))
        gate_sign(ws, ids["ppo"], who(ws, "gina"), "approve", "accepted risk: pilot only, n=100")
        promote(ws, ids["ppo"], who(ws, "gina"))
        assert deployed(ws).model == ids["ppo"] and deployed(ws).override
        assert dlog.verify(ws).ok
        path = dlog.log_path(ws)
        lines = path.read_bytes().split(b"\n")
        lines[0] = lines[0].replace(b"pilot only", b"pilot 0nly")
        path.write_bytes(b"\n".join(lines))
        assert dlog.verify(ws).first_bad == 1
        ws.close()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
