"""Issue 16, finding 1 and "Provenance": only rlhfops' own, signed evidence reaches the gate.

The attacker test reproduces finding 1 through the CLI (a random-bytes model directory, a hand-made
evaluation with a misspelt red-team category); the tamper tests edit what is stored after signing.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from gate_helpers import (
    add_eval,
    add_unsigned_eval,
    all_categories,
    passing_evals,
    sbs_meta,
    shipped_categories,
    success_meta,
    train_chain,
)
from shared_helpers import redteam_meta, who

from rlhfops.gate import log as dlog
from rlhfops.gate.decide import gate_evaluate, gate_sign
from rlhfops.workspace import attest, db

pytestmark = pytest.mark.usefixtures("cheap_kdf", "c_yaml")  # tests/gate/conftest.py


@pytest.fixture
def ready(gws, tmp_path: Path):
    ids = train_chain(gws, tmp_path / "runs")
    evals = passing_evals(gws, tmp_path / "evals", ids["ppo"], baseline=ids["sft"])
    return {**ids, "evals": evals}


def _row(g, name: str):
    return next(r for r in g.results if r.name == name)


def _prov_failures(g) -> dict[str, str]:
    return {r.name: r.detail for r in g.failed if r.name.startswith("provenance:")}


def _random_model(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text('{"layers": 2}', encoding="utf-8")
    (d / "model.safetensors").write_bytes(os.urandom(4096))
    return d


def _set_meta(ws, artifact_id: str, meta: dict) -> None:
    with ws.session() as s:
        s.get_one(db.Artifact, artifact_id).meta = meta


# ---- the attacker, through the CLI ----------------------------------------------------------------
def test_attacker_cannot_bring_hand_made_evidence_through_the_cli(gws, tmp_path, cli, monkeypatch):
    """Finding 1: `artifact add ppo-model RANDOM_DIR` and `artifact add evaluation --meta ...` with a
    misspelt category passed the gate on main; now both are refused (one line, exit 2, nothing written)."""
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    monkeypatch.chdir(gws.root)
    model_dir = _random_model(tmp_path / "random-model")
    before = len(gws.artifacts())
    code, out, err = cli(["artifact", "add", "ppo-model", str(model_dir), "--as", "frank"])
    assert code == 2 and len(err.strip().splitlines()) == 1, (code, out, err)
    assert "ppo-model" in err and "artifact import --external" in err and "rlhfops train" in err
    assert len(gws.artifacts()) == before
    for kind in ("sft-model", "dpo-model", "reward-model"):
        code, _, err = cli(["artifact", "add", kind, str(model_dir), "--as", "frank"])
        assert code == 2 and "artifact import --external" in err
    ev = tmp_path / "eval.json"
    ev.write_text("{}", encoding="utf-8")
    for kind in ("evaluation", "redteam"):
        code, _, err = cli(
            [
                "artifact",
                "add",
                kind,
                str(ev),
                "--meta",
                "kind=redteam",
                "--meta",
                "redteam={harmful_request: {passed: 60, total: 60, pass_rate: 1.0}}",
                "--as",
                "frank",
            ]
        )
        assert code == 2 and "eval run" in err and len(err.strip().splitlines()) == 1
    assert len(gws.artifacts()) == before
    # other kinds are still added by hand
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hi"}\n', encoding="utf-8")
    assert cli(["artifact", "add", "prompts", str(data), "--as", "frank"])[0] == 0


def test_hand_registered_model_and_evaluations_fail_the_gate_named(gws, tmp_path, cli, monkeypatch):
    """Someone who bypasses the CLI (Python API or the database) gets a FAIL naming each bad piece; the
    values of unsigned evaluations are not counted (the gate stays incomplete)."""
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    model = gws.register_artifact("ppo-model", _random_model(tmp_path / "m"), [], "frank", {})
    rt = redteam_meta(model, {"harmful_request": (60, 60)})
    unsigned = [
        add_unsigned_eval(gws, tmp_path / "ev", rt, [model]),
        add_unsigned_eval(gws, tmp_path / "ev", success_meta(model), [model]),
        add_unsigned_eval(gws, tmp_path / "ev", sbs_meta(model, None), [model]),
    ]
    g = gate_evaluate(gws, model)
    assert not g.passed and g.verdict != "pass"
    fails = _prov_failures(g)
    assert "not a model rlhfops trained" in fails["provenance:model"]
    for e in unsigned:
        assert fails[f"provenance:{e[:12]}"].startswith("unsigned"), fails
    assert g.evidence.counted == [] and g.evidence.redteam == {}
    code, out, _ = cli(["gate", "evaluate", model[:12]])
    assert code == 0 and "FAIL" in out and "unsigned: not written by rlhfops" in out
    assert "not a model rlhfops trained" in out
    # and nothing of it is deployed: sign and promote are refused (finding 1 ended in "deployed")
    sign = ["gate", "sign", model[:12], "--decision", "approve", "--reason", "fine", "--as", "gina"]
    code, _, err = cli(sign)
    assert code == 2, err
    code, _, err = cli(["promote", model[:12], "--as", "gina"])
    assert code == 2, err
    from rlhfops.gate.decide import deployed

    assert deployed(gws) is None


def test_misspelt_redteam_category_alone_fails_and_names_the_required_ones(gws, tmp_path):
    """A signed red-team evaluation with only `harmful_request` (misspelt) does not pass: each shipped
    category the spec requires (the spec lists none, so all shipped ones) is a named failure."""
    ids = train_chain(gws, tmp_path / "runs")
    ppo = ids["ppo"]
    add_eval(gws, tmp_path, redteam_meta(ppo, {"harmful_request": (60, 60)}), [ppo])
    add_eval(gws, tmp_path, success_meta(ppo), [ppo])
    add_eval(gws, tmp_path, sbs_meta(ppo, ids["sft"]), [ppo, ids["sft"]])
    g = gate_evaluate(gws, ppo)
    assert g.complete and not g.passed and g.verdict == "fail"
    failed = {r.name: r for r in g.failed}
    assert "harmful_requests" in shipped_categories()
    assert set(failed) == {f"redteam:{c}" for c in shipped_categories()}
    assert failed["redteam:harmful_requests"].detail == "required, but not in the red-team evidence"
    assert (
        _row(g, "redteam:harmful_request").passed is True
    )  # the extra category is shown, not counted as cover
    # the other side: every shipped category present -> pass
    add_eval(gws, tmp_path, redteam_meta(ppo, all_categories()), [ppo])
    assert gate_evaluate(gws, ppo).passed


def test_a_success_criterion_the_evidence_lacks_fails(gws, tmp_path):
    ids = train_chain(gws, tmp_path / "runs")
    ppo = ids["ppo"]
    meta = success_meta(ppo)
    meta["success_criteria"].pop(next(iter(meta["success_criteria"])))
    add_eval(gws, tmp_path, redteam_meta(ppo, all_categories()), [ppo])
    add_eval(gws, tmp_path, meta, [ppo])
    add_eval(gws, tmp_path, sbs_meta(ppo, None), [ppo])
    g = gate_evaluate(gws, ppo)
    missing = [r for r in g.failed if r.name.startswith("success:")]
    assert len(missing) == 1 and "not in the success evidence" in missing[0].detail
    assert g.verdict == "fail"


def test_a_comparison_without_its_interval_fails(gws, tmp_path):
    ids = train_chain(gws, tmp_path / "runs")
    ppo = ids["ppo"]
    meta = sbs_meta(ppo, None)
    del meta["win_rate"]["ci_low"]
    add_eval(gws, tmp_path, redteam_meta(ppo, all_categories()), [ppo])
    add_eval(gws, tmp_path, success_meta(ppo), [ppo])
    add_eval(gws, tmp_path, meta, [ppo])
    g = gate_evaluate(gws, ppo)
    assert [r.name for r in g.failed] == ["win_rate"] and g.verdict == "fail"


# ---- the product path passes, and both sides of each rule -------------------------------------------
def test_signed_evidence_of_a_trained_model_passes(gws, ready):
    g = gate_evaluate(gws, ready["ppo"])
    assert g.passed, g.to_json()
    model_row = _row(g, "provenance:model")
    assert model_row.passed is True and "training attestation verified (stage ppo)" in model_row.detail
    # a provenance row reads "<label> == True": the check's outcome is the observed value
    m = gws.artifact(ready["ppo"])
    assert (model_row.label, model_row.comparator, model_row.required, model_row.observed) == (
        f"provenance: {m.kind} {m.short_id} trained by rlhfops",
        "==",
        True,
        True,
    )
    assert sorted(g.evidence.counted) == sorted(ready["evals"])
    stmt = attest.verify_envelope(
        attest.public_key(gws.root), gws.artifact(ready["evals"][0]).meta["attestation"]
    )
    assert stmt["predicateType"] == attest.EVALUATION
    assert attest.subject_digest(stmt, "model") == ready["ppo"]
    assert attest.subject_digest(stmt, "evaluation") == ready["evals"][0]
    p = stmt["predicate"]
    assert {"suite_digest", "judge", "rlhfops_version", "results"} <= set(p)
    assert p["results"]["redteam"] == gws.artifact(ready["evals"][0]).meta["redteam"]


def test_workspace_key_is_created_at_init_with_0600(gws):
    priv, pub = attest.key_paths(gws.root)
    assert priv.is_file() and pub.is_file()
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE(priv.parent.stat().st_mode) == 0o700
    assert (priv.parent / ".gitignore").read_text() == "*\n"  # never committed by accident


def test_key_is_created_lazily_when_missing(tmp_path):
    assert attest.public_key(tmp_path) is None
    key = attest.ensure_key(tmp_path)
    assert attest.key_id(attest.public_key(tmp_path)) == attest.key_id(key.public_key())
    assert attest.key_id(attest.ensure_key(tmp_path).public_key()) == attest.key_id(key.public_key())


# ---- tampering after signing ----------------------------------------------------------------------
def test_edited_numbers_in_the_stored_meta_are_not_counted(gws, ready):
    rt_id = ready["evals"][0]
    meta = gws.artifact(rt_id).meta
    meta["redteam"]["harmful_requests"]["pass_rate"] = 1.0
    meta["over_refusal_rate"] = 0.0
    _set_meta(gws, rt_id, meta)
    g = gate_evaluate(gws, ready["ppo"])
    assert "differ from the signed ones" in _prov_failures(g)[f"provenance:{rt_id[:12]}"]
    assert rt_id not in g.evidence.counted and not g.passed


def test_edited_numbers_inside_the_attestation_break_its_signature(gws, ready):
    rt_id = ready["evals"][0]
    meta = gws.artifact(rt_id).meta
    stmt = json.loads(base64.b64decode(meta["attestation"]["payload"]))
    stmt["predicate"]["results"]["over_refusal_rate"] = 0.0
    meta["over_refusal_rate"] = 0.0
    meta["attestation"]["payload"] = base64.b64encode(attest.canonical_json(stmt)).decode()
    _set_meta(gws, rt_id, meta)
    g = gate_evaluate(gws, ready["ppo"])
    assert "bad signature" in _prov_failures(g)[f"provenance:{rt_id[:12]}"] and not g.passed


def test_a_statement_signed_with_another_key_is_refused(gws, ready, tmp_path):
    rt_id = ready["evals"][0]
    meta = gws.artifact(rt_id).meta
    stmt = json.loads(base64.b64decode(meta["attestation"]["payload"]))
    other = attest.ensure_key(tmp_path / "attacker")
    meta["attestation"] = attest.sign_statement(other, stmt)
    _set_meta(gws, rt_id, meta)
    g = gate_evaluate(gws, ready["ppo"])
    assert "not signed with this workspace's key" in _prov_failures(g)[f"provenance:{rt_id[:12]}"]


def test_a_removed_attestation_is_unsigned(gws, ready):
    rt_id = ready["evals"][0]
    meta = gws.artifact(rt_id).meta
    del meta["attestation"]
    _set_meta(gws, rt_id, meta)
    assert _prov_failures(gate_evaluate(gws, ready["ppo"]))[f"provenance:{rt_id[:12]}"].startswith("unsigned")


def test_an_edited_result_file_is_a_digest_mismatch(gws, ready):
    rt = gws.artifact(ready["evals"][0])
    os.chmod(rt.path, 0o644)
    rt.path.write_text(rt.path.read_text().replace('"complete": true', '"complete": false'))
    g = gate_evaluate(gws, ready["ppo"])
    assert "digest mismatch" in _prov_failures(g)[f"provenance:{rt.short_id}"]


def test_an_evaluation_moved_to_another_model_is_refused(gws, ready, tmp_path):
    """Swap the model: the DB row of a passing evaluation of the PPO model is pointed at the SFT
    model (parent and meta.model); the statement still names the PPO model."""
    rt_id = ready["evals"][0]
    sft = ready["sft"]
    meta = gws.artifact(rt_id).meta
    meta["model"] = sft
    meta["attestation"]["signatures"] = meta["attestation"]["signatures"]  # untouched
    _set_meta(gws, rt_id, meta)
    with gws.session() as s:
        s.execute(
            sa.update(db.ArtifactParent)
            .where(db.ArtifactParent.child_id == rt_id, db.ArtifactParent.parent_id == ready["ppo"])
            .values(parent_id=sft)
        )
    fails = _prov_failures(gate_evaluate(gws, sft))
    assert f"signed for model {ready['ppo'][:12]}" in fails[f"provenance:{rt_id[:12]}"]


def test_a_swapped_model_file_fails_its_training_attestation(gws, ready):
    m = gws.artifact(ready["ppo"])
    weights = m.path / "model.safetensors"
    os.chmod(weights, 0o644)
    weights.write_bytes(os.urandom(256))
    g = gate_evaluate(gws, ready["ppo"])
    assert "no longer hash to its id" in _prov_failures(g)["provenance:model"] and not g.passed
    row = _row(g, "provenance:model")
    assert (row.comparator, row.required, row.observed, row.passed) == ("==", True, False, False)


def test_a_model_whose_training_statement_names_another_model_fails(gws, ready):
    sft_env = gws.artifact(ready["sft"]).meta["attestation"]
    meta = gws.artifact(ready["ppo"]).meta
    meta["attestation"] = sft_env  # a valid statement, for another model
    _set_meta(gws, ready["ppo"], meta)
    assert "names another model" in _prov_failures(gate_evaluate(gws, ready["ppo"]))["provenance:model"]


# ---- explicit external imports ------------------------------------------------------------------
def test_external_evaluation_counts_as_a_failure_until_the_owner_approves_over_it(
    gws, tmp_path, cli, monkeypatch
):
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    ids = train_chain(gws, tmp_path / "runs")
    ppo = ids["ppo"]
    add_eval(gws, tmp_path, redteam_meta(ppo, all_categories()), [ppo])
    add_eval(gws, tmp_path, success_meta(ppo), [ppo])
    f = tmp_path / "vendor-sbs.json"
    f.write_text(json.dumps({"meta": sbs_meta(ppo, None), "items": []}), encoding="utf-8")
    before = len(gws.artifacts())
    # without --external, with a short reason, or for a kind add handles: refused, nothing written
    args = ["artifact", "import", "evaluation", str(f), "--parent", ppo[:12], "--as", "frank"]
    code, _, err = cli([*args, "--reason", "vendor side-by-side run, March"])
    assert code == 2 and "--external" in err
    code, _, err = cli([*args, "--external", "--reason", "vendor"])
    assert code == 2 and "too short" in err
    code, _, err = cli(
        ["artifact", "import", "--external", "prompts", str(f), "--reason", "vendor prompts set"]
    )
    assert code == 2 and "artifact add" in err
    assert len(gws.artifacts()) == before
    code, out, err = cli([*args, "--external", "--reason", "vendor side-by-side run, March"])
    assert code == 0, err
    ext = gws.artifact(out.strip())
    assert ext.meta["external"]["reason"] == "vendor side-by-side run, March"
    assert ext.meta["external"]["imported_by"] == "frank" and ext.meta["external"]["verified"] is False
    g = gate_evaluate(gws, ppo)
    assert g.complete and not g.passed and ext.id in g.evidence.counted  # its numbers are shown...
    fails = _prov_failures(g)
    assert list(fails) == [f"provenance:{ext.short_id}"]  # ...and it is the one failure, named
    assert "external import by frank (vendor side-by-side run, March)" in fails[f"provenance:{ext.short_id}"]
    # a short reason cannot approve over it; a written one can, and stays in the decision log
    for short in ("ok", "9 letters"):  # MIN_OVERRIDE_REASON - 1 characters is still too short
        with pytest.raises(Exception, match="needs a written reason of at least 10"):
            gate_sign(gws, ppo, who(gws, "gina"), "approve", short)
    e = gate_sign(gws, ppo, who(gws, "gina"), "approve", "QA audited")  # exactly 10 characters
    assert e.get("reason") == "QA audited"
    assert e.get("override") is True and e.get("failed") == [f"provenance:{ext.short_id}"]
    assert dlog.entries(gws)[-1].get("override") is True


def test_external_model_import_is_a_named_failure(gws, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    d = _random_model(tmp_path / "vendor-model")
    code, out, err = cli(
        [
            "artifact",
            "import",
            "--external",
            "ppo-model",
            str(d),
            "--reason",
            "vendor fine-tune v3",
            "--as",
            "frank",
        ]
    )
    assert code == 0, err
    model = out.strip()
    add_eval(gws, tmp_path, redteam_meta(model, all_categories()), [model])
    add_eval(gws, tmp_path, success_meta(model), [model])
    add_eval(gws, tmp_path, sbs_meta(model, None), [model])
    g = gate_evaluate(gws, model)
    assert g.complete and [r.name for r in g.failed] == ["provenance:model"]
    assert "external import by frank (vendor fine-tune v3)" in g.failed[0].detail


def test_edited_training_metrics_of_the_model_fail_its_provenance(gws, ready):
    meta = gws.artifact(ready["ppo"]).meta
    assert _row(gate_evaluate(gws, ready["ppo"]), "provenance:model").passed is True
    meta["eval"] = {"alarm": 0, "beats_base": True}
    _set_meta(gws, ready["ppo"], meta)
    detail = _prov_failures(gate_evaluate(gws, ready["ppo"]))["provenance:model"]
    assert "training metrics differ from the signed ones" in detail
