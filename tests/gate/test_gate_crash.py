"""Issue 16, finding 5: a crash while a decision is written must not brick the gate, and must not look
like tampering. Fault injection: ``RLHFOPS_FAULT_AT=decision-log:K`` makes the process ``os._exit`` right
after step K of the write protocol (1 pending written, 2 artifact stored, 3 head stored, 4 half the
line written, 5 line written, 6 pending removed). On main at da4c465 there is no protocol: a process
that died between the database write and the append left "entries were removed" and every later sign
and promote refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from gate_helpers import passing_evals, train_chain
from shared_helpers import password_of, who

from rlhfops.gate import log as dlog
from rlhfops.gate.decide import deployed, gate_sign, promote

CLI = "from rlhfops.cli.main import main; main()"


@pytest.fixture
def ready(gws, tmp_path: Path, monkeypatch):
    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "evals", ids["ppo"], baseline=ids["sft"])
    who(gws, "gina")  # her account
    return ids


def _sign_in_child(ws, model: str, reason: str, fault: int | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RLHFOPS_TOKEN", dlog.FAULT_ENV)}
    env["RLHFOPS_WORKSPACE"] = str(ws.root)
    if fault is not None:
        env[dlog.FAULT_ENV] = f"decision-log:{fault}"
    args = ["gate", "sign", model, "--decision", "reject", "--reason", reason, "--as", "gina"]
    return subprocess.run(
        [sys.executable, "-c", CLI, *args, "--password-stdin", "--no-report"],
        input=password_of("gina") + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ws.root,
        timeout=300,
    )


def _verify_cli(ws) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != dlog.FAULT_ENV}
    env["RLHFOPS_WORKSPACE"] = str(ws.root)
    return subprocess.run(
        [sys.executable, "-c", CLI, "gate", "log", "--verify"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ws.root,
        timeout=300,
    )


def test_a_crash_at_every_step_is_recoverable_and_told_apart_from_tampering(gws, ready, cli, monkeypatch):
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    model = ready["ppo"]
    n = 0
    for k in dlog.STEPS:
        r = _sign_in_child(gws, model, f"crash at step {k}", fault=k)
        assert r.returncode == dlog.FAULT_EXIT, (k, r.stdout, r.stderr)
        v = dlog.verify(gws)
        assert v.ok, (k, v.problem)  # never "entries were removed"
        if k <= 4:  # the log is in its old state; the half-done append is named as a crash
            assert v.entries == n and "a crash, not tampering" in v.pending, k
            assert len(dlog.entries(gws)) == n
            out = _verify_cli(gws)
            assert out.returncode == 1 and "--repair" in out.stderr and "removed" not in out.stderr, k
        else:  # the line is in: the new state
            assert v.entries == n + 1 and not v.pending, k
        if k % 2:  # `gate log --repair` completes it ...
            code, out, err = cli(["gate", "log", "--repair"])
            assert code == 0, err
            assert ("completed" in out) == (k <= 4) or (k == 5 and "pending marker" in out), (k, out)
        else:  # ... and so does the next sign (nothing is bricked)
            gate_sign(gws, model, who(gws, "gina"), "reject", f"after the crash at step {k}")
            n += 1
        n += 1
        v = dlog.verify(gws)
        assert v.ok and not v.pending and v.entries == n, (k, v)
        assert not dlog.pending_path(gws).exists()
        assert [e.get("reason") for e in dlog.entries(gws)][-1].endswith(str(k)), k
    assert len(gws.artifacts("decision")) == n
    gate_sign(gws, model, who(gws, "gina"), "approve", "all met after the crashes")
    promote(gws, model, who(gws, "gina"))
    assert deployed(gws).model == model and dlog.verify(gws).ok


def test_tampering_is_not_mistaken_for_a_crash(gws, ready):
    model = ready["ppo"]
    r = _sign_in_child(gws, model, "crashed after the database write", fault=3)
    assert r.returncode == dlog.FAULT_EXIT, r.stderr
    pending = dlog.pending_path(gws).read_bytes()
    # a pending append that was edited does not continue the log: named, not repaired
    dlog.pending_path(gws).write_bytes(pending.replace(b"crashed after", b"CRASHED after"))
    v = dlog.verify(gws)
    assert not v.ok and v.first_bad == 1 and "pending append" in v.problem and "does not verify" in v.problem
    with pytest.raises(dlog.DecisionLogError, match="not a crash that --repair can complete"):
        dlog.repair(gws)
    # the pending file removed: the stored decision the log lacks is now what it looks like
    dlog.pending_path(gws).unlink()
    v = dlog.verify(gws)
    assert not v.ok and "entries were removed" in v.problem
    with pytest.raises(dlog.DecisionLogError):
        gate_sign(gws, model, who(gws, "gina"), "reject", "on a tampered log")
    # a partial last line that no pending append explains is named too
    dlog.pending_path(gws).write_bytes(pending)
    assert dlog.repair(gws).startswith("completed")
    with open(dlog.log_path(gws), "ab") as fh:
        fh.write(b'{"seq":2,')
    v = dlog.verify(gws)
    assert not v.ok and "partial line" in v.problem
