"""The binding gate on a real workspace (SQLite): sign, promote and every refusal; the decision log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gate_helpers import add_eval, passing_evals, sbs_meta, success_meta, train_chain
from shared_helpers import redteam_meta, who

from rlhfops.errors import PlayOrderError, UserError
from rlhfops.gate import log as dlog
from rlhfops.gate.decide import GateRefused, deployed, gate_evaluate, gate_sign, promote
from rlhfops.workspace.plays import compute_status

pytestmark = pytest.mark.usefixtures("cheap_kdf", "c_yaml")  # tests/gate/conftest.py


@pytest.fixture
def ready(gws, tmp_path: Path):
    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "evals", ids["ppo"], baseline=ids["sft"])
    return ids


def test_gate_happy_path_promotes_and_records(gws, ready):
    g = gate_evaluate(gws, ready["ppo"][:10])
    assert g.complete and g.passed, g.to_json()
    e1 = gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all thresholds met")
    assert e1.get("override") is False and e1.seq == 1
    e2 = promote(gws, ready["ppo"], who(gws, "gina"))
    assert e2.get("action") == "promote" and e2.get("prev") == e1.hash
    d = deployed(gws)
    assert d is not None and d.model == ready["ppo"] and d.person == "gina" and not d.override
    assert (d.model_kind, d.entry, d.promoted_at) == ("ppo-model", e2.seq, e2.get("logged_at"))
    for e in (e1, e2):  # UTC to the second, as every signed time (workspace/signing.py stamp)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", e.get("logged_at")), e.get("logged_at")
    # both entries are decision artifacts; only the promotion counts as a deployment for status/monitor
    arts = {a.id: a for a in gws.artifacts("decision")}
    assert arts[e1.hash].meta["decision"] == "sign-approve" and arts[e2.hash].meta["decision"] == "promoted"
    assert ready["ppo"] in arts[e2.hash].parents
    st = compute_status(gws).plays[4]
    assert any("promoted by gina" in x for x in st.evidence), st
    # the red-team evaluation (an `evaluation` artifact of kind redteam) counts: Play 5 is complete
    assert any(x.startswith("red team ") for x in st.evidence), st
    assert st.missing == [], st
    from rlhfops.monitor.facts import deployed_model

    assert deployed_model(gws.artifacts()).id == ready["ppo"]
    assert dlog.verify(gws).ok


def test_gate_promote_refuses_without_a_pass(gws, tmp_path):
    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "evals", ids["ppo"], ci_low=0.5)  # CI lower bound under 0.55
    with pytest.raises(GateRefused, match=r"does not pass the gate: win_rate 0.5 \(needs >= 0.55\)"):
        promote(gws, ids["ppo"], who(gws, "gina"))
    # a plain (short-reason) approval over the failure is refused
    with pytest.raises(GateRefused, match="needs a written reason"):
        gate_sign(gws, ids["ppo"], who(gws, "gina"), "approve", "ok")
    with pytest.raises(GateRefused, match="does not pass the gate"):
        promote(gws, ids["ppo"], who(gws, "gina"))
    assert deployed(gws) is None and not dlog.log_path(gws).exists()


def test_gate_override_needs_reason_and_shows_forever(gws, tmp_path):
    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "evals", ids["ppo"], ci_low=0.5)
    reason = "win-rate CI is wide at n=100; business accepts the risk for the pilot"
    e = gate_sign(gws, ids["ppo"], who(gws, "gina"), "approve", reason)
    assert e.get("override") is True and e.get("failed") == ["win_rate"] and e.get("reason") == reason
    p = promote(gws, ids["ppo"], who(gws, "gina"))
    assert p.get("override") is True and deployed(gws).override
    assert all(a.meta["override"] for a in gws.artifacts("decision"))
    lines = [json.loads(x) for x in dlog.log_path(gws).read_text().splitlines()]
    assert [x["override"] for x in lines] == [True, True]


def test_gate_promote_refuses_without_signature_and_after_reject(gws, ready):
    with pytest.raises(GateRefused, match="has no gate decision"):
        promote(gws, ready["ppo"], who(gws, "gina"))
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "reject", "tone is off in escalations")
    with pytest.raises(GateRefused, match="is 'reject' by gina: tone is off"):
        promote(gws, ready["ppo"], who(gws, "gina"))
    assert deployed(gws) is None


def test_gate_only_the_gate_owner(gws, ready):
    with pytest.raises(UserError, match="does not have the role gate-owner"):
        gate_sign(gws, ready["ppo"], who(gws, "frank"), "approve", "looks fine to me")
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")
    for name in ("frank", "bob", "nobody"):
        with pytest.raises(UserError, match="promote: '.*' does not have the role gate-owner"):
            promote(gws, ready["ppo"], who(gws, name))
    assert deployed(gws) is None
    promote(gws, ready["ppo"], who(gws, "gina"))


def test_gate_promote_refuses_with_stale_spec(gws, ready):
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")
    spec = gws.spec_path
    spec.write_text(spec.read_text().replace("min_win_rate: 0.55", "min_win_rate: 0.50"))
    with pytest.raises(GateRefused, match="not signed on its current content by business-owner .*stale"):
        promote(gws, ready["ppo"], who(gws, "gina"))
    # re-signing the spec does not revive the gate approval given on the old one
    gws.sign_spec("business-owner", who(gws, "bob"))
    gws.sign_spec("technical-lead", who(gws, "carol"))
    with pytest.raises(GateRefused, match="was signed on spec .* \\(stale\\)"):
        promote(gws, ready["ppo"], who(gws, "gina"))
    with pytest.raises(GateRefused, match="not signed on its current content"):
        spec.write_text(spec.read_text().replace("min_win_rate: 0.50", "min_win_rate: 0.51"))
        gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")


def test_gate_new_evidence_invalidates_approval(gws, ready, tmp_path):
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")
    add_eval(
        gws, tmp_path / "evals", sbs_meta(ready["ppo"], None, ci_low=0.58, suite="support-v2"), [ready["ppo"]]
    )
    with pytest.raises(GateRefused, match="evidence .* changed since the approval"):
        promote(gws, ready["ppo"], who(gws, "gina"))


def test_gate_sign_refuses_incomplete_evaluation(gws, tmp_path):
    ids = train_chain(gws, tmp_path / "runs")
    add_eval(gws, tmp_path / "evals", redteam_meta(ids["ppo"], {"harmful_request": (60, 60)}), [ids["ppo"]])
    add_eval(gws, tmp_path / "evals", success_meta(ids["ppo"]), [ids["ppo"]])
    with pytest.raises(GateRefused, match="incomplete \\(win_rate has no evidence\\)"):
        gate_sign(gws, ids["ppo"], who(gws, "gina"), "approve", "all met")
    with pytest.raises(GateRefused, match="incomplete"):
        promote(gws, ids["ppo"], who(gws, "gina"))
    # an evaluation where the model is only the baseline does not count for it
    other = add_eval(gws, tmp_path / "evals", sbs_meta(ids["sft"], ids["ppo"]), [ids["sft"], ids["ppo"]])
    assert other not in gate_evaluate(gws, ids["ppo"]).evidence.counted


def test_gate_promote_keeps_play_order(gws, tmp_path):
    # a policy evaluated and approved, but an unevaluated newer policy exists: Play 4 incomplete
    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "evals", ids["ppo"])
    gate_sign(gws, ids["ppo"], who(gws, "gina"), "approve", "all met")
    from shared_helpers import fake_model

    gws.record_training_run("dpo", {"model": ids["sft"]}, fake_model(tmp_path / "dpo", "d"), "frank", {})
    with pytest.raises(PlayOrderError, match="promote refused: Play 4 .* has no evaluation.*no override"):
        promote(gws, ids["ppo"], who(gws, "gina"))


def test_gate_refuses_non_model(gws, ready):
    spec_id = gws.current_spec().hash
    with pytest.raises(UserError, match="is a spec, not a model"):
        gate_evaluate(gws, spec_id)


def test_gate_log_tamper_middle_entry_detected(gws, ready):
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "reject", "first look: tone is off")
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "second look: fine")
    promote(gws, ready["ppo"], who(gws, "gina"))
    assert dlog.verify(gws).ok and dlog.verify(gws).entries == 3
    path = dlog.log_path(gws)
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    i = lines[1].index(b"second look")
    lines[1] = lines[1][:i] + b"S" + lines[1][i + 1 :]  # one byte in the middle entry
    path.write_bytes(b"\n".join(lines))
    v = dlog.verify(gws)
    assert not v.ok and v.first_bad == 2 and "entry 2" in v.problem
    with pytest.raises(dlog.DecisionLogError, match="entry 2"):
        promote(gws, ready["ppo"], who(gws, "gina"))
    with pytest.raises(dlog.DecisionLogError):
        deployed(gws)


def test_gate_log_chain_and_truncation(gws, ready):
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")
    promote(gws, ready["ppo"], who(gws, "gina"))
    path = dlog.log_path(gws)
    good = path.read_bytes()
    path.write_bytes(good.split(b"\n")[0] + b"\n")  # drop the last entry
    v = dlog.verify(gws)
    assert v.first_bad == 2 and "missing from the log" in v.problem
    # an edit of `prev` (chain) in the last entry
    a, b = good.split(b"\n")[:2]
    d = json.loads(b)
    d["prev"] = "f" * 64
    from rlhfops.gate.verdict import canonical_json

    path.write_bytes(a + b"\n" + canonical_json(d) + b"\n")
    v = dlog.verify(gws)
    assert v.first_bad == 2 and "prev" in v.problem
    # non-canonical whitespace counts as an edit
    path.write_bytes(a + b"\n" + json.dumps(json.loads(b)).encode() + b"\n")
    assert dlog.verify(gws).first_bad == 2
    path.write_bytes(good)
    assert dlog.verify(gws).ok


def test_gate_append_check_runs_under_lock_and_writes_nothing(gws, ready):
    e = gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")

    def refuse(current):
        assert [x.hash for x in current] == [e.hash]
        raise GateRefused("changed meanwhile")

    before = dlog.log_path(gws).read_bytes()
    with pytest.raises(GateRefused, match="changed meanwhile"):
        dlog.append(gws, {"action": "note"}, [ready["ppo"]], who(gws, "gina"), "now", check=refuse)
    assert dlog.log_path(gws).read_bytes() == before and len(gws.artifacts("decision")) == 1


def test_gate_log_any_byte_edit_names_its_entry(gws, ready):
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "reject", "first look")
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "second look")
    promote(gws, ready["ppo"], who(gws, "gina"))
    path = dlog.log_path(gws)
    good = path.read_bytes()
    lines = good.split(b"\n")[:3]
    checked = 0
    for li, line in enumerate(lines, start=1):
        for pos in range(0, len(line), 11):
            new = b"x" if line[pos : pos + 1] != b"x" else b"y"
            edited = list(lines)
            edited[li - 1] = line[:pos] + new + line[pos + 1 :]
            path.write_bytes(b"\n".join(edited) + b"\n")
            v = dlog.verify(gws)
            assert v.first_bad == li, (li, pos, v.problem)
            checked += 1
    path.write_bytes(good)
    assert dlog.verify(gws).ok and checked > 100


def test_a_deployment_record_is_immutable():
    import dataclasses

    from rlhfops.gate.decide import Deployment

    d = Deployment("m", "ppo-model", "gina", "2026-01-01T00:00:00+00:00", False, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.override = True  # a promotion's record is evidence, not a draft


@pytest.mark.parametrize("meanwhile", ["reject", "promote"])
def test_promote_rechecks_under_the_log_lock(gws, ready, monkeypatch, meanwhile):
    # issue 17 (session 4): a decision recorded between promote's read of the log and its append (another
    # process) is seen under the lock: a newer sign, or the same model promoted meanwhile
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")
    append = dlog.append

    def racing(ws, record, *args, **kwargs):
        if record.get("action") == "promote" and not racing.done:
            racing.done = True  # the other process's decision lands first
            if meanwhile == "reject":
                gate_sign(gws, ready["ppo"], who(gws, "gina"), "reject", "second thoughts")
            else:
                append(ws, record, *args, **kwargs)
        return append(ws, record, *args, **kwargs)

    racing.done = False
    monkeypatch.setattr(dlog, "append", racing)
    want = "newer gate decision" if meanwhile == "reject" else "was deployed meanwhile"
    with pytest.raises(GateRefused, match=want):
        promote(gws, ready["ppo"], who(gws, "gina"))
    assert len([e for e in dlog.entries(gws) if e.get("action") == "promote"]) == (meanwhile == "promote")


def test_the_evaluation_names_the_model_and_the_spec(gws, ready):
    g = gate_evaluate(gws, ready["ppo"])
    assert (g.model, g.spec_hash) == (ready["ppo"], gws.current_spec().hash)


def test_an_evaluation_belongs_to_the_model_its_meta_names_whatever_the_parent_order(gws, ready, tmp_path):
    # issue 17 (session 4): a side-by-side whose baseline is listed first is the candidate's evaluation
    from rlhfops.gate.decide import gate_model, model_evaluations

    ppo, sft = ready["ppo"], ready["sft"]
    sbs = add_eval(gws, tmp_path, sbs_meta(ppo, sft), [sft, ppo])
    assert sbs in [a.id for a in model_evaluations(gws, gate_model(gws, ppo))]
    assert sbs not in [a.id for a in model_evaluations(gws, gate_model(gws, sft))]


def _log(*records):
    return [dlog.LogEntry(i, {"seq": i, **r}, f"h{i}") for i, r in enumerate(records, start=1)]


def test_the_latest_signature_is_this_models_latest_sign():
    from rlhfops.gate.decide import latest_signature

    entries = _log(
        {"action": "sign", "model": "A", "decision": "approve"},
        {"action": "sign", "model": "B", "decision": "reject"},  # another model's sign
        {"action": "promote", "model": "A"},  # not a sign
    )
    assert latest_signature(entries, "A").hash == "h1"
    assert latest_signature(entries, "B").hash == "h2"
    assert latest_signature(entries, "C") is None


def test_the_deployed_model_is_the_latest_promotion():
    from rlhfops.gate.decide import _deployed_from

    entries = _log(
        {"action": "promote", "model": "A", "model_kind": "sft-model", "person": "gina", "logged_at": "t1"},
        {"action": "sign", "model": "B", "decision": "approve"},
        {"action": "promote", "model": "B", "model_kind": "ppo-model", "person": "gina", "logged_at": "t3"},
    )
    d = _deployed_from(entries)
    assert (d.model, d.model_kind, d.promoted_at, d.entry) == ("B", "ppo-model", "t3", 3)
    assert _deployed_from(entries[:2]).model == "A" and _deployed_from(entries[1:2]) is None


def test_promoting_the_deployed_model_again_is_refused_as_such(gws, ready):
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")
    first = promote(gws, ready["ppo"], who(gws, "gina"))
    with pytest.raises(GateRefused, match=f"already the deployed model \\(decision log entry {first.seq}\\)"):
        promote(gws, ready["ppo"], who(gws, "gina"))


def test_a_spec_that_fails_its_check_is_named_by_its_first_problem(gws, ready):
    gws.spec_path.write_text("task: [unclosed\n", encoding="utf-8")  # not YAML
    problem = gws.current_spec().check.problems[0]
    with pytest.raises(
        GateRefused, match=f"gate evaluate: the spec does not pass .*\\({re.escape(str(problem))}\\)"
    ):
        gate_evaluate(gws, ready["ppo"])
