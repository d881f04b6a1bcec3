"""rlhfops.workspace.attest: DSSE pre-authentication encoding, in-toto statements, Ed25519 sign/verify."""

from __future__ import annotations

import base64
import os

import pytest

from rlhfops.workspace import attest


def test_pae_matches_the_dsse_specification_example():
    # DSSE protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    assert attest.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_statement_round_trip_and_subjects(tmp_path):
    key = attest.ensure_key(tmp_path)
    stmt = attest.statement({"model": "a" * 64, "evaluation": "b" * 64}, attest.EVALUATION, {"x": 1})
    env = attest.sign_statement(key, stmt)
    assert env["payloadType"] == attest.PAYLOAD_TYPE
    got = attest.verify_envelope(attest.public_key(tmp_path), env)
    assert got == stmt and got["_type"] == attest.STATEMENT_TYPE
    assert attest.subject_digest(got, "model") == "a" * 64 and attest.subject_digest(got, "nope") is None


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: "not an envelope", "not an attestation envelope"),
        (lambda e: {**e, "payloadType": "text/plain"}, "not an attestation envelope"),
        (lambda e: {**e, "payload": "%%%"}, "not base64"),
        (lambda e: {**e, "signatures": []}, "no signature"),
        (lambda e: {**e, "signatures": [{**e["signatures"][0], "keyid": "0" * 16}]}, "not signed with this"),
        (
            lambda e: {**e, "payload": base64.b64encode(base64.b64decode(e["payload"]) + b" ").decode()},
            "bad signature",
        ),
        (lambda e: {**e, "signatures": [{**e["signatures"][0], "sig": "AAAA"}]}, "bad signature"),
    ],
)
def test_verify_refuses_malformed_or_changed_envelopes(tmp_path, mutate, message):
    key = attest.ensure_key(tmp_path)
    env = attest.sign_statement(key, attest.statement({"model": "a" * 64}, attest.TRAINING, {}))
    attest.verify_envelope(key.public_key(), env)  # the unchanged one verifies
    with pytest.raises(attest.AttestationError, match=message):
        attest.verify_envelope(key.public_key(), mutate(env))


def test_a_signed_payload_that_is_not_a_statement_is_refused(tmp_path):
    key = attest.ensure_key(tmp_path)
    env = attest.sign_statement(key, {"_type": "something else"})
    with pytest.raises(attest.AttestationError, match="not an in-toto statement"):
        attest.verify_envelope(key.public_key(), env)


def test_a_key_made_by_another_process_meanwhile_wins(tmp_path, monkeypatch):
    """Two processes creating the key at once: the one that links second uses the first one's key."""
    other = tmp_path / "other"
    theirs = attest.ensure_key(other)
    real_link = os.link

    def link_after_the_other_process(src, dst):
        real_link(attest.key_paths(other)[0], dst)  # the other process got there first
        return real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_the_other_process)
    mine = attest.ensure_key(tmp_path / "ws")
    assert attest.key_id(mine.public_key()) == attest.key_id(theirs.public_key())
    assert sorted(p.name for p in (tmp_path / "ws" / attest.KEY_DIR).iterdir()) == [
        ".gitignore",
        attest.KEY_FILE,
    ]
