"""Issue 16, findings 1 (name claims) and 6 (database-only edits): who signs the gate, and what
`gate log --verify` checks. Each test fails on main at da4c465 (a name claim signed; the edits passed)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from gate_helpers import passing_evals, token_of, train_chain
from shared_helpers import password_of, who

from rlhfops.errors import UserError
from rlhfops.gate import log as dlog
from rlhfops.gate.decide import deployed, gate_sign, promote
from rlhfops.workspace import db

pytestmark = pytest.mark.usefixtures("cheap_kdf", "c_yaml")  # tests/gate/conftest.py


@pytest.fixture
def ready(gws, tmp_path: Path, monkeypatch):
    ids = train_chain(gws, tmp_path / "runs")
    passing_evals(gws, tmp_path / "evals", ids["ppo"], baseline=ids["sft"])
    monkeypatch.setenv("RLHFOPS_WORKSPACE", str(gws.root))
    monkeypatch.delenv("RLHFOPS_TOKEN", raising=False)
    return ids


def _decisions(ws) -> int:
    return len(ws.artifacts("decision"))


def test_gate_sign_and_promote_need_proof_of_identity(gws, ready, cli, monkeypatch):
    ppo = ready["ppo"][:12]
    sign = ["gate", "sign", ppo, "--decision", "approve", "--reason", "all met", "--as", "gina"]
    gina_token = token_of(gws, "gina")
    frank_token = token_of(gws, "frank")
    code, _, err = cli(sign)  # the name claim that used to sign
    assert code == 2 and "needs a credential" in err and len(err.strip().splitlines()) == 1
    assert _decisions(gws) == 0 and not dlog.log_path(gws).exists()
    monkeypatch.setattr("sys.stdin", io.StringIO("guessed-password\n"))
    code, _, err = cli([*sign, "--password-stdin"])
    assert code == 2 and "wrong password for 'gina'" in err and _decisions(gws) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(frank_token + "\n"))
    code, _, err = cli([*sign, "--token-stdin"])  # another person's token
    assert code == 2 and "belongs to 'frank', not 'gina'" in err and _decisions(gws) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(password_of("gina") + "\n"))
    code, out, err = cli([*sign, "--password-stdin"])  # the right password
    assert code == 0 and "decision log entry 1: approve" in out, err
    # promote: no credential, a revoked token, then a live token
    code, _, err = cli(["promote", ppo, "--as", "gina"])
    assert code == 2 and "needs a credential" in err and deployed(gws) is None
    from rlhfops.annotate.accounts import create_token, revoke_tokens

    revoke_tokens(gws, "gina")
    monkeypatch.setenv("RLHFOPS_TOKEN", gina_token)
    code, _, err = cli(["promote", ppo])
    assert code == 2 and "not valid (unknown or revoked)" in err and deployed(gws) is None
    monkeypatch.setenv("RLHFOPS_TOKEN", create_token(gws, "gina"))
    code, out, err = cli(["promote", ppo])  # the token names its person: no --as needed
    assert code == 0 and "by gina" in out, err
    assert dlog.verify(gws).ok
    keys = {e.get("public_key") for e in dlog.entries(gws)}
    assert len(keys) == 2  # her password's key and her new token's key, both registered to her
    with pytest.raises(UserError, match="needs the person's credential"):
        gate_sign(gws, ready["ppo"], "gina", "reject", "a bare name")


def _promoted(gws, ready):
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")
    return promote(gws, ready["ppo"], who(gws, "gina"))


def test_db_only_edit_of_the_promotion_is_named(gws, ready, tmp_path, cli):
    p = _promoted(gws, ready)
    other = gws.register_artifact("ppo-model", _model(tmp_path / "other"), [], "mallory", {})
    with gws.session() as s:
        row = s.get(db.Artifact, p.hash)
        row.meta = {**row.meta, "model": other}
        row.creator = "mallory"
    v = dlog.verify(gws)
    assert not v.ok and v.first_bad == 2
    assert "meta.model" in v.problem and "creator 'mallory'" in v.problem and "database" in v.problem
    code, _, err = cli(["gate", "log", "--verify"])
    assert code == 2 and "entry 2" in err and "meta.model" in err
    with pytest.raises(dlog.DecisionLogError, match="entry 2"):
        deployed(gws)  # promote and monitoring do not follow the edited row
    code, out, _ = cli(["status", "--json"])
    play5 = json.loads(out)["plays"][4]
    assert code == 0 and not any("mallory" in e for e in play5["evidence"])
    assert any("decision log fails verification (entry 2" in m for m in play5["missing"]), play5


def _model(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "w.bin").write_bytes(b"never approved")
    return d


def test_truncated_log_and_deleted_row_is_named(gws, ready, cli):
    p = _promoted(gws, ready)
    path = dlog.log_path(gws)
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")
    with gws.session() as s:
        s.execute(sa.delete(db.ArtifactParent).where(db.ArtifactParent.child_id == p.hash))
        s.execute(sa.delete(db.Artifact).where(db.Artifact.id == p.hash))
    v = dlog.verify(gws)
    assert (
        not v.ok and v.first_bad == 2 and "entries were removed" in v.problem and "head record" in v.problem
    )
    code, _, err = cli(["gate", "log", "--verify"])
    assert code == 2 and "entry 2: missing from the log" in err


def test_head_anchor_catches_a_consistent_rewrite(gws, ready, cli):
    p = _promoted(gws, ready)
    code, head, _ = cli(["gate", "log", "--head"])
    assert code == 0 and head.strip() == p.hash
    assert cli(["gate", "log", "--verify", "--head", head.strip()])[0] == 0
    # all three witnesses cut back consistently: only the anchored head tells
    path = dlog.log_path(gws)
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")
    with gws.session() as s:
        s.execute(sa.delete(db.ArtifactParent).where(db.ArtifactParent.child_id == p.hash))
        s.execute(sa.delete(db.Artifact).where(db.Artifact.id == p.hash))
        s.execute(sa.delete(db.DecisionHead).where(db.DecisionHead.seq == 2))
    assert dlog.verify(gws).ok  # the limit: a writer of the log and the database can cut consistently
    code, _, err = cli(["gate", "log", "--verify", "--head", head.strip()])
    assert code == 2 and f"anchored head {p.hash[:12]}" in err and "not an entry of the log" in err
    code, _, err = cli(["gate", "log", "--verify", "--head", "ab" * 32])
    assert code == 2 and "not an entry of the log" in err


def _forge(gws, model: str, signer, person: str) -> None:
    """A writer of the log and the database appends a promotion in ``person``'s name, signed with
    ``signer``'s key, with every database witness made to match."""
    from rlhfops.gate.verdict import canonical_json

    entries = dlog.entries(gws)
    data = {
        "action": "promote",
        "decision": "promote",
        "model": model,
        "model_kind": "ppo-model",
        "person": person,
        "seq": len(entries) + 1,
        "prev": entries[-1].hash,
        "logged_at": "2026-12-06T00:00:00+00:00",
        "public_key": signer.public_key,
        "override": False,
    }
    data["ed25519"] = signer.sign(canonical_json(data))
    raw = canonical_json(data)
    f = gws.root / "forged.json"
    f.write_bytes(raw)
    gws.register_artifact("decision", f, [model], person, dlog.decision_meta(data))
    with gws.session() as s:
        s.add(db.DecisionHead(seq=data["seq"], hash=dlog._sha(raw), recorded_at=db.utcnow()))
    with open(dlog.log_path(gws), "ab") as fh:
        fh.write(raw + b"\n")


def test_a_forged_entry_without_the_persons_key_is_named(gws, ready):
    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")
    mallory = who(gws, "mallory")
    _forge(gws, ready["ppo"], mallory, "gina")
    v = dlog.verify(gws)
    assert not v.ok and v.first_bad == 2 and "registered to mallory, not gina" in v.problem


def test_an_edited_signed_entry_is_named_even_with_the_database_matching(gws, ready):
    """Re-hashing the chain and rewriting the database after an edit does not help: the signature."""
    from rlhfops.gate.verdict import canonical_json

    e = gate_sign(gws, ready["ppo"], who(gws, "gina"), "reject", "tone is off")
    data = dict(e.data)
    data["decision"] = "approve"  # flip the decision, keep gina's signature
    raw = canonical_json(data)
    dlog.log_path(gws).write_bytes(raw + b"\n")
    f = gws.root / "edited.json"
    f.write_bytes(raw)
    with gws.session() as s:
        s.execute(sa.delete(db.ArtifactParent).where(db.ArtifactParent.child_id == e.hash))
        s.execute(sa.delete(db.Artifact).where(db.Artifact.id == e.hash))
        s.execute(sa.update(db.DecisionHead).where(db.DecisionHead.seq == 1).values(hash=dlog._sha(raw)))
    gws.register_artifact("decision", f, [ready["ppo"]], "gina", dlog.decision_meta(data))
    v = dlog.verify(gws)
    assert not v.ok and v.first_bad == 1 and "does not verify under gina's key" in v.problem
    assert json.loads(raw)["decision"] == "approve"


def test_a_workspace_member_cannot_mint_a_token_or_reset_a_password_for_someone_else(
    gws, ready, cli, monkeypatch
):
    """A token or a new password is a credential that signs: getting one for another account needs
    that account's current password."""
    from rlhfops.annotate.accounts import authenticate

    who(gws, "gina")

    def tokens() -> int:
        from rlhfops.workspace import annotation_tables as m

        with gws.session() as s:
            return len(s.scalars(sa.select(m.ApiToken)).all())

    monkeypatch.setattr("sys.stdin", io.StringIO("guessed-password\n"))
    code, out, err = cli(["raters", "token", "gina", "--password-stdin"])
    assert code == 2 and "wrong current password" in err and "rlh_" not in out and tokens() == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("guessed-password\nmallory-chose-this\n"))
    code, _, err = cli(["raters", "add", "gina", "--role", "gate-owner", "--password-stdin"])
    assert code == 2 and "wrong current password" in err
    assert authenticate(gws, "gina", "mallory-chose-this") is None
    assert authenticate(gws, "gina", password_of("gina")) is not None
    # her own current password: both work
    monkeypatch.setattr("sys.stdin", io.StringIO(password_of("gina") + "\n"))
    code, out, err = cli(["raters", "token", "gina", "--password-stdin"])
    assert code == 0 and out.startswith("rlh_") and tokens() == 1, err
    monkeypatch.setattr("sys.stdin", io.StringIO(password_of("gina") + "\nher-new-password\n"))
    code, out, err = cli(["raters", "add", "gina", "--role", "gate-owner", "--password-stdin"])
    assert code == 0 and "updated" in out, err
    assert authenticate(gws, "gina", "her-new-password") is not None


def test_promote_needs_a_registered_key_of_the_gate_owner(gws, ready):
    # issue 17 (session 4): promote's own check, as gate sign's above (the sign is made with her key)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from rlhfops.workspace.signing import SignatureError, Signer

    gate_sign(gws, ready["ppo"], who(gws, "gina"), "approve", "all met")
    with pytest.raises(UserError, match="needs the person's credential"):
        promote(gws, ready["ppo"], "gina")
    key = Ed25519PrivateKey.generate()  # a key of her own making, never registered
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    with pytest.raises(SignatureError, match=f"signing key {public[:12]} is not registered to gina"):
        promote(gws, ready["ppo"], Signer("gina", public, "password:made-up", key))
    assert deployed(gws) is None
    assert promote(gws, ready["ppo"], who(gws, "gina")).get("action") == "promote"  # her registered key
