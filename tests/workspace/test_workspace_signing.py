"""Sign-offs, staleness after an edit, SFT refused on a stale spec (exit 2), overrides; both backends."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from shared_helpers import password_of, run_cli, who
from ws_helpers import ready_play1, sign_all

from rlhfops.errors import PlayOrderError, UserError
from rlhfops.spec.check import file_sha256
from rlhfops.workspace.plays import check_stage_ready, compute_status, record_override


def _edit_spec(ws) -> None:
    p = ws.spec_path
    p.write_text(p.read_text().replace("reward_model_refresh_days: 90", "reward_model_refresh_days: 60"))


def test_signature_records_who_when_and_hash(ws) -> None:
    sig = ws.sign_spec("business-owner", who(ws, "bob"))
    assert (sig.role, sig.person, sig.spec_hash) == ("business-owner", "bob", file_sha256(ws.spec_path))
    v = ws.current_spec()
    assert [(s.role, s.person) for s in v.signatures] == [("business-owner", "bob")]
    assert v.missing_roles == ["technical-lead"] and not v.is_signed_and_current
    ws.sign_spec("technical-lead", who(ws, "carol"))
    assert ws.current_spec().is_signed_and_current
    # the signed version is stored in the artifact store under that same hash
    assert ws.artifact(sig.spec_hash).kind == "spec"


def test_signing_needs_the_role(ws) -> None:
    with pytest.raises(UserError, match="'alice' does not have the role business-owner .*held by: bob"):
        ws.sign_spec("business-owner", who(ws, "alice"))
    with pytest.raises(UserError, match="signed by business-owner or technical-lead"):
        ws.sign_spec("gate-owner", who(ws, "bob"))


def test_invalid_spec_cannot_be_signed(ws) -> None:
    ws.spec_path.write_text(ws.spec_path.read_text().replace("audience:", "audiences:"))
    with pytest.raises(UserError, match="does not pass `rlhfops spec check`"):
        ws.sign_spec("business-owner", who(ws, "bob"))


def test_edit_makes_signatures_stale_and_status_says_so(ws) -> None:
    ready_play1(ws)
    assert compute_status(ws).plays[0].state == "complete"
    old = ws.current_spec().hash
    _edit_spec(ws)
    v = ws.current_spec()
    assert v.hash != old and not v.is_signed_and_current
    assert {s.role for s in v.stale_signatures} == {"business-owner", "technical-lead"}
    assert all(s.spec_hash == old for s in v.stale_signatures)
    st = compute_status(ws)
    assert st.plays[0].state == "in progress"
    assert "stale" in st.plays[0].blocks_next and "business-owner" in st.plays[0].blocks_next
    assert [t["rule"] for t in st.triggers] == ["spec_changed"]
    # re-signing the new content makes it current again
    sign_all(ws)
    assert ws.current_spec().is_signed_and_current and ws.current_spec().stale_signatures == ()


def test_sft_refused_on_a_stale_spec_exit_2_names_the_signature(ws, capsys, monkeypatch) -> None:
    ready_play1(ws)
    check_stage_ready(ws, "sft", {})  # signed and current: no error
    _edit_spec(ws)
    with pytest.raises(PlayOrderError) as err:
        check_stage_ready(ws, "sft", {})
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("sft refused: Play 1 (task spec) incomplete: spec ")
    assert "is not signed by the business-owner (bob's signature is on" in msg and "stale" in msg
    assert "owner: alice (task-spec-owner)" in msg
    # through the CLI: exit 2, one line
    monkeypatch.chdir(ws.root)
    code, out, errtext = run_cli(["override", "sft", "--reason", "short"], capsys)
    assert code == 2 and errtext.count("\n") == 1


def test_unsigned_spec_refused_names_the_missing_signature(ws) -> None:
    ws.record_baseline({"task_completion_rate": 0.7}, "t", "alice")
    ws.sign_spec("business-owner", who(ws, "bob"))
    with pytest.raises(PlayOrderError, match=r"is not signed by the technical-lead; run `rlhfops spec sign"):
        check_stage_ready(ws, "sft", {})


def test_missing_baseline_blocks_sft(ws) -> None:
    sign_all(ws)
    with pytest.raises(PlayOrderError, match="no business baseline recorded"):
        check_stage_ready(ws, "sft", {})


def test_override_by_the_owner_of_the_blocked_play(ws, capsys, monkeypatch) -> None:
    ready_play1(ws)
    _edit_spec(ws)
    with pytest.raises(UserError, match="'frank' does not have the role domain-expert-lead"):
        record_override(ws, "sft", "typo fix in the spec, content unchanged", who(ws, "frank"))
    with pytest.raises(UserError, match="too short"):
        record_override(ws, "sft", "because", who(ws, "dave"))
    o = record_override(ws, "sft", "typo fix in the spec, content unchanged", who(ws, "dave"))
    assert (o.stage, o.play, o.person) == ("sft", 2, "dave")
    assert o.spec_hash == ws.current_spec().hash and "not signed by the business-owner" in o.blocker
    check_stage_ready(ws, "sft", {})  # honoured
    st = compute_status(ws)
    assert st.plays[1].override.startswith("sft overridden by dave: typo fix")
    assert [x["stage"] for x in st.to_json()["overrides"]] == ["sft"]
    # an override is for one spec version: the next edit blocks again
    ws.spec_path.write_text(ws.spec_path.read_text() + "\n# another edit\n")
    with pytest.raises(PlayOrderError):
        check_stage_ready(ws, "sft", {})
    # the CLI prints the override
    monkeypatch.chdir(ws.root)
    args = ["override", "sft", "--reason", "comment-only edit of the spec", "--as", "dave"]
    code, _, err = run_cli(args, capsys)  # a name alone proves nothing
    assert code == 2 and "needs a credential" in err and len(ws.overrides()) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(password_of("dave") + "\n"))
    code, out, _ = run_cli([*args, "--password-stdin"], capsys)
    assert code == 0 and out.startswith("override ") and "sft may start on spec" in out
    assert len(ws.overrides()) == 2


def test_promote_has_no_override(ws) -> None:
    ready_play1(ws)
    ws.add_person("gina", "gate-owner", "alice")
    with pytest.raises(PlayOrderError, match="the deployment gate has no override"):
        record_override(ws, "promote", "we are in a hurry this week", who(ws, "gina"))
    with pytest.raises(PlayOrderError, match="promote refused: .*the deployment gate has no override"):
        check_stage_ready(ws, "promote", {})


def test_status_json_lists_five_plays_with_owners(ws, capsys, monkeypatch) -> None:
    ready_play1(ws)
    monkeypatch.chdir(ws.root)
    code, out, err = run_cli(["status", "--json"], capsys)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert [p["play"] for p in data["plays"]] == [1, 2, 3, 4, 5]
    assert [p["state"] for p in data["plays"]] == [
        "complete",
        "not started",
        "not started",
        "not started",
        "not started",
    ]
    assert data["plays"][0]["owners"] == ["alice"] and data["plays"][1]["owners"] == ["dave"]
    assert data["plays"][4]["owners"] == [] and data["spec_hash"] == file_sha256(Path(ws.spec_path))
    assert data["plays"][0]["blocks_next"] is None
    code, out, _ = run_cli(["status"], capsys)
    assert code == 0 and "1 task spec" in out and "complete" in out and "dave" in out


def test_cli_sign_and_show(ws, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ws.root)
    who(ws, "alice"), who(ws, "bob")
    monkeypatch.setattr("sys.stdin", io.StringIO(password_of("alice") + "\n"))
    code, out, err = run_cli(["spec", "sign", "--role", "business-owner", "--password-stdin"], capsys)
    assert code == 2 and "alice" in err and "business-owner" in err  # RLHFOPS_USER=alice
    monkeypatch.setattr("sys.stdin", io.StringIO(password_of("bob") + "\n"))
    code, out, _ = run_cli(
        ["spec", "sign", "--role", "business_owner", "--as", "bob", "--password-stdin"], capsys
    )
    assert code == 0 and "as business-owner: bob" in out and "still to sign: technical-lead" in out
    _edit_spec(ws)
    code, out, _ = run_cli(["spec", "show", "--json"], capsys)
    data = json.loads(out)
    assert data["signatures"] == [] and data["stale_signatures"][0]["person"] == "bob"
    assert data["missing_signatures"] == ["business-owner", "technical-lead"]


def _signature_rows(ws) -> int:
    import sqlalchemy as sa

    from rlhfops.workspace import db

    with ws.session() as s:
        return len(s.scalars(sa.select(db.Signature)).all())


def test_spec_sign_needs_proof_of_identity(ws, capsys, monkeypatch) -> None:
    """Finding 1 (name claims): `--as NAME` alone no longer signs; password and token, both sides."""
    from rlhfops.annotate.accounts import create_token, revoke_tokens

    monkeypatch.chdir(ws.root)
    monkeypatch.delenv("RLHFOPS_TOKEN", raising=False)
    who(ws, "bob"), who(ws, "carol")
    sign = ["spec", "sign", "--role", "business-owner", "--as", "bob"]
    code, _, err = run_cli(sign, capsys)  # a name claim
    assert code == 2 and "needs a credential" in err and err.count("\n") == 1 and _signature_rows(ws) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("not-bobs-password\n"))
    code, _, err = run_cli([*sign, "--password-stdin"], capsys)
    assert code == 2 and "wrong password for 'bob'" in err and _signature_rows(ws) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(password_of("carol") + "\n"))  # carol's password as bob
    code, _, err = run_cli([*sign, "--password-stdin"], capsys)
    assert code == 2 and "wrong password" in err and _signature_rows(ws) == 0
    monkeypatch.setenv("RLHFOPS_TOKEN", create_token(ws, "carol"))  # another person's token
    code, _, err = run_cli(sign, capsys)
    assert code == 2 and "belongs to 'carol', not 'bob'" in err and _signature_rows(ws) == 0
    bobs = create_token(ws, "bob")
    revoke_tokens(ws, "bob")
    monkeypatch.setattr("sys.stdin", io.StringIO(bobs + "\n"))
    code, _, err = run_cli([*sign, "--token-stdin"], capsys)  # a revoked token
    assert code == 2 and "not valid (unknown or revoked)" in err and _signature_rows(ws) == 0
    monkeypatch.setenv("RLHFOPS_TOKEN", create_token(ws, "bob"))  # his own live token
    code, out, err = run_cli(sign, capsys)
    assert code == 0 and "as business-owner: bob" in out, err
    monkeypatch.delenv("RLHFOPS_TOKEN")
    monkeypatch.setattr("sys.stdin", io.StringIO(password_of("carol") + "\n"))  # the right password
    code, out, err = run_cli(
        ["spec", "sign", "--role", "technical-lead", "--as", "carol", "--password-stdin"], capsys
    )
    assert code == 0 and ws.current_spec().is_signed_and_current, err
    with pytest.raises(UserError, match="needs the person's credential"):
        ws.sign_spec("business-owner", "bob")  # the Python API takes an authenticated signer only


def test_a_signature_row_written_into_the_database_does_not_count(ws) -> None:
    """A sign-off counts only when signed with the person's registered key: a row inserted or edited in
    the database (no key, a stranger's key, another person's name) does not sign the spec."""
    from datetime import UTC, datetime

    from rlhfops.workspace import db
    from rlhfops.workspace.signing import spec_signature_payload

    h = ws.current_spec().hash
    at = datetime(2026, 1, 1, tzinfo=UTC)
    mallory = who(ws, "mallory")  # an account, but not a business-owner
    forged = mallory.sign(spec_signature_payload("business-owner", "bob", h, at))
    with ws.session() as s:
        s.add(db.Signature(role="business-owner", person="bob", spec_hash=h, signed_at=at))
        s.add(
            db.Signature(
                role="business-owner",
                person="bob",
                spec_hash=h,
                signed_at=at,
                public_key=mallory.public_key,
                signature=forged,
            )
        )
    assert ws.current_spec().signatures == ()
    ws.sign_spec("business-owner", who(ws, "bob"))
    assert [x.person for x in ws.current_spec().signatures] == ["bob"]
    with ws.session() as s:  # edit the genuine row's role: its signature no longer matches
        import sqlalchemy as sa

        row = s.scalars(
            sa.select(db.Signature).where(db.Signature.public_key == who(ws, "bob").public_key)
        ).one()
        row.role = "technical-lead"
    assert ws.current_spec().signatures == ()


def test_an_override_row_written_into_the_database_does_not_count(ws) -> None:
    from rlhfops.workspace import db

    ready_play1(ws)
    _edit_spec(ws)
    with ws.session() as s:
        s.add(
            db.Override(
                stage="sft",
                play=2,
                spec_hash=ws.current_spec().hash,
                blocker="x",
                reason="inserted straight into the database",
                person="dave",
                created_at=db.utcnow(),
            )
        )
    assert ws.overrides() == []
    with pytest.raises(PlayOrderError):
        check_stage_ready(ws, "sft", {})
    record_override(ws, "sft", "typo fix in the spec, content unchanged", who(ws, "dave"))
    check_stage_ready(ws, "sft", {})
