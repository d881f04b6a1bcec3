"""People's signing keys: Ed25519 (RFC 8032) keys whose public half is registered in the workspace.

A person has one key per credential they authenticate with (their password, or one API token). The
private half (the 32-byte Ed25519 seed) is stored in ``person_keys`` encrypted with AES-256-GCM under a
key derived from the credential with scrypt (n=2**14, r=8, p=1, a random 16-byte salt); the person's
name and public key are the AEAD's associated data. Only someone who presents the credential can sign
with the key: a stolen database gives public keys and ciphertexts, not signing power.

:class:`Signer` is what the signing actions (spec sign, override, gate sign, promote) take instead of a
name. It is made by :func:`rlhfops.gate.auth.authenticate` after the credential was checked against the
account (see docs/security.md, "Identity and signatures").
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from rlhfops.errors import UserError
from rlhfops.workspace import db

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from rlhfops.workspace.core import Workspace

KDF_N, KDF_R, KDF_P = 2**14, 8, 1


class SignatureError(UserError):
    """A signing key cannot be unlocked or a signature cannot be made."""


@dataclass(frozen=True)
class Signer:
    """An authenticated person holding their unlocked private key (never printed, never stored)."""

    name: str
    public_key: str  # 64 hex characters
    credential: str  # "password:..." or "token:..." (which credential unlocked the key)
    _key: Ed25519PrivateKey = field(repr=False, compare=False)

    def sign(self, payload: bytes) -> str:
        """The Ed25519 signature of ``payload``, hex."""
        return self._key.sign(payload).hex()


def canonical(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no whitespace, UTF-8): what gets signed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def verify_signature(public_key: str, payload: bytes, signature: str) -> bool:
    """True when ``signature`` (hex) is a valid Ed25519 signature of ``payload`` under ``public_key``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), payload
        )
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def registered_keys(ws: Workspace) -> dict[str, str]:
    """public key (hex) -> the person it is registered to."""
    with ws.session() as s:
        return {k: p for k, p in s.execute(sa.select(db.PersonKey.public_key, db.PersonKey.person))}


def key_is_registered(ws: Workspace, person: str, public_key: str) -> bool:
    return registered_keys(ws).get(public_key) == person


def _kek(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=KDF_N, r=KDF_R, p=KDF_P, dklen=32)


def _aad(person: str, public_key: str) -> bytes:
    return f"rlhfops-person-key\n{person}\n{public_key}".encode()


def unlock(ws: Workspace, person: str, credential: str, secret: str) -> Signer:
    """The person's key for ``credential`` (created and registered on first use), unlocked with ``secret``.

    The caller has already checked ``secret`` against the account; ``credential`` names it
    (``password:<digest of the stored password hash>`` or ``token:<token hash>``), so a new password
    or a new token gets a new key and old signatures stay verifiable with the old public key.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    with ws.session() as s:
        row = s.scalar(sa.select(db.PersonKey).where(db.PersonKey.credential == credential))
    if row is not None:
        if row.person != person:
            raise SignatureError(
                f"signing key for {person}: the credential's key is registered to another person"
            )
        try:
            seed = AESGCM(_kek(secret, bytes.fromhex(row.salt))).decrypt(
                bytes.fromhex(row.nonce), bytes.fromhex(row.wrapped_key), _aad(person, row.public_key)
            )
        except (InvalidTag, ValueError) as err:
            raise SignatureError(
                f"signing key of {person} (public key {row.public_key[:12]}) cannot be unlocked with this "
                f"credential ({type(err).__name__}); the stored key was altered"
            ) from None
        return Signer(person, row.public_key, credential, Ed25519PrivateKey.from_private_bytes(seed))
    key = Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization

    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    wrapped = AESGCM(_kek(secret, salt)).encrypt(nonce, seed, _aad(person, public))
    try:
        with ws.session() as s:
            s.add(
                db.PersonKey(
                    person=person,
                    public_key=public,
                    credential=credential,
                    salt=salt.hex(),
                    nonce=nonce.hex(),
                    wrapped_key=wrapped.hex(),
                    created_at=db.utcnow(),
                )
            )
    except IntegrityError:  # the same credential registered its key at the same moment elsewhere
        return unlock(ws, person, credential, secret)
    return Signer(person, public, credential, key)


def require_registered(ws: Workspace, signer: Signer, action: str) -> None:
    """Refuse a :class:`Signer` whose key is not registered to its person in this workspace."""
    if not isinstance(signer, Signer):
        raise UserError(
            f"{action}: needs the person's credential (their password or an API token), "
            "not just a name; give --password-stdin, --token-stdin or RLHFOPS_TOKEN"
        )
    if not key_is_registered(ws, signer.name, signer.public_key):
        raise SignatureError(
            f"{action}: the signing key {signer.public_key[:12]} is not registered to {signer.name}"
        )


def stamp(when: datetime) -> str:
    """A stored time as signed: UTC, ISO 8601 to the second."""
    return db.as_utc(when).isoformat(timespec="seconds")


def spec_signature_payload(role: str, person: str, spec_hash: str, signed_at: datetime) -> bytes:
    return canonical(
        {
            "what": "spec-signature",
            "role": role,
            "person": person,
            "spec_hash": spec_hash,
            "at": stamp(signed_at),
        }
    )


def override_payload(
    stage: str, play: int, spec_hash: str, blocker: str, reason: str, person: str, created_at: datetime
) -> bytes:
    return canonical(
        {
            "what": "override",
            "stage": stage,
            "play": play,
            "spec_hash": spec_hash,
            "blocker": blocker,
            "reason": reason,
            "person": person,
            "at": stamp(created_at),
        }
    )


def row_signed(
    ws_keys: dict[str, str], person: str, public_key: str | None, signature: str | None, payload: bytes
) -> bool:
    """True when a DB row's signature is valid under a key registered to ``person``."""
    if not public_key or not signature or ws_keys.get(public_key) != person:
        return False
    return verify_signature(public_key, payload, signature)


def signed_rows(keys: dict[str, str], rows: Iterable[Any], payload: Callable[[Any], bytes]) -> list[Any]:
    """The ``rows`` (each with ``person``, ``public_key``, ``signature``) whose signature of ``payload(row)``
    is valid under a key registered to the row's person; ``keys`` from :func:`registered_keys`."""
    return [r for r in rows if row_signed(keys, r.person, r.public_key, r.signature, payload(r))]


def spec_row_payload(row: Any) -> bytes:
    """What a stored spec sign-off (``db.Signature``) signed."""
    return spec_signature_payload(row.role, row.person, row.spec_hash, row.signed_at)


def override_row_payload(row: Any) -> bytes:
    """What a stored override (``db.Override``) signed."""
    return override_payload(
        row.stage, row.play, row.spec_hash, row.blocker, row.reason, row.person, row.created_at
    )
