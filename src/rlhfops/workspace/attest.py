"""Signed statements about artifacts: the provenance of the evidence the deployment gate reads.

The shape follows in-toto's Statement v1 inside a DSSE envelope (as SLSA provenance and Sigstore use):

* statement: ``{"_type": STATEMENT_TYPE, "subject": [{"name", "digest": {"sha256"}}],
  "predicateType": ..., "predicate": {...}}``; subjects are artifact content digests (an artifact's
  id is the SHA-256 of its content, :func:`rlhfops.workspace.store.content_hash`).
* envelope: ``{"payloadType": PAYLOAD_TYPE, "payload": base64(canonical JSON of the statement),
  "signatures": [{"keyid", "sig"}]}``; the signature is Ed25519 over DSSE's pre-authentication
  encoding (:func:`pae`) of the payload type and payload.

The workspace key is an Ed25519 key in ``<workspace>/keys/attestation.key`` (PKCS#8 PEM, mode 0600,
directory 0700, with a ``.gitignore`` of ``*``) created at ``init`` or on first use; its public half
is ``keys/attestation.pub``.
Only the signing and verifying functions live here (no database): the writers are in
:mod:`rlhfops.workspace.provenance`, the checks the gate runs in :mod:`rlhfops.gate.provenance`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
TRAINING = "https://rlhfops.dev/attestation/training/v1"
EVALUATION = "https://rlhfops.dev/attestation/evaluation/v1"
KEY_DIR = "keys"
KEY_FILE = "attestation.key"
PUB_FILE = "attestation.pub"


class AttestationError(ValueError):
    """An envelope that does not verify: malformed, unsigned, wrong key or a bad signature."""


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the signed bytes of a statement."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_json(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj`` (e.g. the prompts an evaluation used)."""
    return hashlib.sha256(canonical_json(obj)).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement(subjects: dict[str, str], predicate_type: str, predicate: dict[str, Any]) -> dict[str, Any]:
    """An in-toto statement: ``subjects`` maps a name ("model", "evaluation") to a SHA-256 digest."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": n, "digest": {"sha256": d}} for n, d in subjects.items()],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def subject_digest(stmt: dict[str, Any], name: str) -> str | None:
    """The SHA-256 digest of the subject called ``name``, or None."""
    for s in stmt.get("subject") or []:
        if isinstance(s, dict) and s.get("name") == name and isinstance(s.get("digest"), dict):
            return s["digest"].get("sha256")
    return None


def key_id(public_key: Any) -> str:
    """First 16 hex digits of the SHA-256 of the raw public key."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_statement(private_key: Any, stmt: dict[str, Any]) -> dict[str, Any]:
    """A DSSE envelope holding ``stmt``, signed with the Ed25519 ``private_key``."""
    payload = canonical_json(stmt)
    sig = private_key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [
            {"keyid": key_id(private_key.public_key()), "sig": base64.b64encode(sig).decode("ascii")}
        ],
    }


def verify_envelope(public_key: Any, envelope: Any) -> dict[str, Any]:
    """The statement inside ``envelope`` when one of its signatures verifies with ``public_key``.

    Raises :class:`AttestationError` naming the problem otherwise.
    """
    from cryptography.exceptions import InvalidSignature

    if not isinstance(envelope, dict) or envelope.get("payloadType") != PAYLOAD_TYPE:
        raise AttestationError("not an attestation envelope")
    try:
        payload = base64.b64decode(str(envelope.get("payload", "")), validate=True)
    except ValueError:
        raise AttestationError("the payload is not base64") from None
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise AttestationError("the envelope has no signature")
    kid = key_id(public_key)
    for s in sigs:
        if not isinstance(s, dict) or s.get("keyid") != kid:
            continue
        try:
            sig = base64.b64decode(str(s.get("sig", "")), validate=True)
            public_key.verify(sig, pae(PAYLOAD_TYPE, payload))
        except (InvalidSignature, ValueError):
            raise AttestationError("bad signature (the statement was changed after signing)") from None
        try:
            stmt = json.loads(payload)
        except ValueError:
            raise AttestationError("the signed payload is not JSON") from None
        if not isinstance(stmt, dict) or stmt.get("_type") != STATEMENT_TYPE:
            raise AttestationError("the signed payload is not an in-toto statement")
        return stmt
    raise AttestationError(f"not signed with this workspace's key (key id {kid})")


# ---- the workspace key -------------------------------------------------------------------------
def key_paths(root: Path) -> tuple[Path, Path]:
    """(private key file, public key file) of the workspace at ``root``."""
    d = Path(root) / KEY_DIR
    return d / KEY_FILE, d / PUB_FILE


def ensure_key(root: Path) -> Any:
    """The workspace's Ed25519 private key, created (0600, atomically) when there is none yet."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv, pub = key_paths(root)
    if not priv.exists():
        priv.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        ignore = priv.parent / ".gitignore"
        if not ignore.exists():  # the key never goes into a repository by accident
            ignore.write_text("*\n", encoding="utf-8")
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp_key = priv.with_name(f".{priv.name}.{os.getpid()}.tmp")
        fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        try:
            os.link(tmp_key, priv)  # complete or absent; fails when another process made one first
        except FileExistsError:
            return ensure_key(root)
        finally:
            tmp_key.unlink()
        tmp = pub.with_name(pub.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        os.replace(tmp, pub)
        return key
    key = serialization.load_pem_private_key(priv.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AttestationError(f"{priv}: not an Ed25519 private key")
    return key


def public_key(root: Path) -> Any | None:
    """The workspace's public key (from ``attestation.pub``, else derived from the key), or None."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    priv, pub = key_paths(root)
    if pub.exists():
        key = serialization.load_pem_public_key(pub.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise AttestationError(f"{pub}: not an Ed25519 public key")
        return key
    if priv.exists():
        return ensure_key(root).public_key()
    return None
