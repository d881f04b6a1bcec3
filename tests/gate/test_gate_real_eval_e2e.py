"""The gate on evaluations that really ran: `eval run` on a tiny random model (no hand-made metas), then
gate evaluate -> promote refused -> gate sign (override needs a reason) -> promote, and the log verifies.

A 2-layer random model writes gibberish, so it cannot refuse a harmful request: the red-team threshold
fails for a reason the test can state, and the gate must say so.
"""

from __future__ import annotations

import json

from gate_helpers import fake_run_dir, token_of, train_chain


def test_real_evaluations_feed_a_binding_gate(gws, tmp_path, monkeypatch, cli):
    from rlhfops.models.tiny import make_tiny_model_dir

    policy = make_tiny_model_dir(tmp_path / "tiny-policy", seed=3)
    run = fake_run_dir(gws.root / "runs", "ppo", policy)
    ids = train_chain(gws, tmp_path / "runs", policy_dir=run / "final")
    base = gws.register_artifact(
        "base-model", make_tiny_model_dir(tmp_path / "base", seed=4), [], "frank", {}
    )
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    ppo = ids["ppo"][:12]
    gen = ["--max-new-tokens", "4"]

    code, out, err = cli(["eval", "run", ppo, "--suite", "redteam", "--limit", "2", *gen, "--json"])
    assert code == 0, err
    redteam = json.loads(out)
    assert redteam["redteam"]["harmful_requests"]["pass_rate"] == 0.0  # gibberish never refuses
    code, _, err = cli(
        ["eval", "run", ppo, "--suite", "support-heldout", "--limit", "4", "--baseline", base[:12]]
        + [*gen, "--kl-prompts", "2"]
    )
    assert code == 0, err

    # both results were stored by `eval run` with a statement signed by the workspace key (issue 16)
    from rlhfops.workspace import attest

    evals = gws.artifacts("evaluation")
    assert len(evals) == 2
    for ev in evals:
        stmt = attest.verify_envelope(attest.public_key(gws.root), ev.meta["attestation"])
        assert attest.subject_digest(stmt, "model") == ids["ppo"]
        assert attest.subject_digest(stmt, "evaluation") == ev.id
        pred = stmt["predicate"]
        assert len(pred["suite_digest"]) == 64 and pred["rlhfops_version"] and pred["judge"]
        assert pred["results"] == {k: v for k, v in ev.meta.items() if k != "attestation"}
    code, out, _ = cli(["gate", "evaluate", ppo, "--json"])
    g = json.loads(out)
    prov = {r["name"]: r["status"] for r in g["results"] if r["name"].startswith("provenance:")}
    assert prov == {"provenance:model": "pass"} and len(g["evidence"]["counted"]) == 2

    code, out, _ = cli(["gate", "evaluate", ppo])
    assert "FAIL" in out.splitlines()[0]
    assert any(ln.split()[:3] == ["FAIL", "red-team", "harmful_requests:"] for ln in out.splitlines())
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(gws, "gina"))
    code, _, err = cli(["promote", ppo, "--as", "gina"])
    assert code == 2 and "harmful_requests" in err  # no pass, no promotion
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(gws, "frank"))
    code, _, err = cli(["gate", "sign", ppo, "--decision", "approve", "--reason", "ok", "--as", "frank"])
    assert code == 2 and "gate-owner" in err  # only the gate owner signs
    monkeypatch.setenv("RLHFOPS_TOKEN", token_of(gws, "gina"))
    code, _, err = cli(["gate", "sign", ppo, "--decision", "approve", "--reason", "ok", "--as", "gina"])
    assert code == 2 and "needs a written reason" in err
    reason = "internal test tenant only, no customer traffic; re-run red team after the fix"
    code, out, err = cli(
        ["gate", "sign", ppo, "--decision", "approve", "--reason", reason, "--as", "gina", "--no-report"]
    )
    assert code == 0 and "OVERRIDE over failed thresholds" in out and "harmful_requests" in out, err
    code, out, err = cli(["promote", ppo, "--as", "gina"])
    assert code == 0 and "override" in out, err
    code, out, err = cli(["gate", "log", "--verify"])
    assert code == 0, err
