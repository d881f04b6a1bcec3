"""The workspace: a directory with ``rlhfops.yaml``, the task spec, the artifact store and a database.

:class:`Workspace` holds the people and their roles, spec sign-offs, the business baseline, the
artifact store with lineage, play-order overrides and triggers. It is storage: the play-order rules and
status (:mod:`rlhfops.workspace.plays`) call it, never the reverse.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from rlhfops.errors import DataError, UserError
from rlhfops.spec.check import SpecCheck, check_spec_file
from rlhfops.workspace import db, migrate
from rlhfops.workspace.identity import check_role
from rlhfops.workspace.kinds import STAGE_OUTPUT_KIND, input_kind
from rlhfops.workspace.settings import (
    DEFAULT_DB_FILE,
    SETTINGS_FILE,
    WorkspaceSettings,
    load_settings,
)
from rlhfops.workspace.signing import Signer
from rlhfops.workspace.store import KINDS, ArtifactRecord, content_hash, store_copy

SIGNING_ROLES = ("business-owner", "technical-lead")
_ARTIFACT_REF = re.compile(r"[0-9a-f]{4,64}")  # a SHA-256 hex digest or a prefix of one


class WorkspaceError(UserError):
    """The workspace is missing, not initialised, or its database is not at the expected revision."""


@dataclass(frozen=True)
class SignatureRecord:
    role: str
    person: str
    spec_hash: str
    signed_at: datetime


@dataclass(frozen=True)
class SpecVersion:
    """The spec file as it is now: its hash, the parsed spec (None if invalid) and its signatures."""

    path: Path
    hash: str
    check: SpecCheck
    signatures: tuple[SignatureRecord, ...]  # on this hash
    stale_signatures: tuple[SignatureRecord, ...]  # latest per role on another hash, not re-signed

    @property
    def spec(self):  # -> TaskSpec | None
        return self.check.spec

    @property
    def missing_roles(self) -> list[str]:
        have = {s.role for s in self.signatures}
        return [r for r in SIGNING_ROLES if r not in have]

    @property
    def is_signed_and_current(self) -> bool:
        return self.check.ok and not self.missing_roles


@dataclass(frozen=True)
class OverrideRecord:
    id: int
    stage: str
    play: int
    spec_hash: str
    blocker: str
    reason: str
    person: str
    created_at: datetime


@dataclass(frozen=True)
class TriggerRecord:
    id: int
    play: int
    rule: str
    evidence: str
    source: str
    opened_at: datetime
    closed_at: datetime | None


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: show nothing secret
        return "<database url>"


class Workspace:
    """An open workspace. Use :func:`find_workspace`, :meth:`open` or :func:`init_workspace`."""

    def __init__(self, root: Path, settings: WorkspaceSettings, engine: Engine | None = None) -> None:
        self.root = root.resolve()
        self.settings = settings
        self._engine = engine

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, check_revision: bool = True) -> Workspace:
        """Open the workspace at ``root``; refuses a database that needs ``rlhfops db upgrade``."""
        root = Path(root)
        if not (root / SETTINGS_FILE).is_file():
            raise WorkspaceError(
                f"{root}: not a workspace (no {SETTINGS_FILE}); create one with `rlhfops init`"
            )
        ws = cls(root, load_settings(root))
        if check_revision:
            ws.require_current_schema()
        return ws

    @property
    def database_url(self) -> str:
        env = os.environ.get("RLHFOPS_DATABASE_URL")
        if env:
            return env
        if self.settings.database_url:
            return self.settings.database_url
        return f"sqlite:///{self.root / DEFAULT_DB_FILE}"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = db.make_engine(self.database_url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def db_revision(self) -> str | None:
        try:
            return migrate.current_revision(self.engine)
        except OperationalError as err:
            msg = str(err.orig).splitlines()[0] if err.orig else str(err)
            raise WorkspaceError(f"cannot open database {_redact(self.database_url)}: {msg}") from None

    def require_current_schema(self) -> None:
        current, head = self.db_revision(), migrate.head_revision()
        if current != head:
            raise WorkspaceError(
                f"database {_redact(self.database_url)} is at revision {current or '(empty)'}, "
                f"this rlhfops needs {head}: run `rlhfops db upgrade`"
            )

    def upgrade_db(self) -> str | None:
        """Apply pending migrations; returns the revision reached."""
        self.db_revision()  # connection errors as one line
        return migrate.upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            yield s

    # ---- paths ---------------------------------------------------------------------------------
    @property
    def spec_path(self) -> Path:
        return self.root / self.settings.spec_file

    @property
    def store_dir(self) -> Path:
        return self.root / self.settings.artifacts_dir

    # ---- people --------------------------------------------------------------------------------
    def add_person(self, name: str, role: str, added_by: str) -> bool:
        """Give ``name`` the ``role``; False when they already had it (nothing written)."""
        role = check_role(role)
        name = name.strip()
        if not name:
            raise UserError("people add: the name is empty")
        try:
            with self.session() as s:
                exists = s.scalar(
                    sa.select(db.Person.id).where(db.Person.name == name, db.Person.role == role)
                )
                if exists is not None:
                    return False
                s.add(db.Person(name=name, role=role, added_by=added_by, added_at=db.utcnow()))
        except IntegrityError:  # another process added the same (name, role) first
            return False
        return True

    def people(self) -> list[tuple[str, str]]:
        """(name, role) rows ordered by role then name."""
        with self.session() as s:
            rows = s.execute(
                sa.select(db.Person.name, db.Person.role).order_by(db.Person.role, db.Person.name)
            )
            return [(r[0], r[1]) for r in rows]

    def people_with_role(self, role: str) -> list[str]:
        return [n for n, r in self.people() if r == role]

    def has_role(self, name: str, role: str) -> bool:
        return name in self.people_with_role(role)

    def require_role(self, name: str, role: str, action: str) -> None:
        if not self.has_role(name, role):
            holders = ", ".join(self.people_with_role(role)) or "nobody yet"
            raise UserError(
                f"{action}: '{name}' does not have the role {role} in this workspace (held by: {holders}); "
                f"add it with `rlhfops people add '{name}' --role {role}` or act `--as` the right person"
            )

    # ---- spec ----------------------------------------------------------------------------------
    def current_spec(self) -> SpecVersion:
        """The spec file as it is now, with its signatures and whether it is signed and current."""
        from rlhfops.workspace.signing import registered_keys, row_signed, spec_signature_payload

        check = check_spec_file(self.spec_path)
        keys = registered_keys(self)
        with self.session() as s:
            rows = s.scalars(sa.select(db.Signature).order_by(db.Signature.signed_at, db.Signature.id)).all()
            sigs = [  # only sign-offs signed with the person's registered key count
                SignatureRecord(r.role, r.person, r.spec_hash, db.as_utc(r.signed_at))
                for r in rows
                if row_signed(
                    keys,
                    r.person,
                    r.public_key,
                    r.signature,
                    spec_signature_payload(r.role, r.person, r.spec_hash, r.signed_at),
                )
            ]
        on_this = tuple(x for x in sigs if x.spec_hash == check.sha256)
        signed_roles = {x.role for x in on_this}
        latest_other: dict[str, SignatureRecord] = {}
        for x in sigs:
            if x.spec_hash != check.sha256 and x.role not in signed_roles:
                latest_other[x.role] = x
        return SpecVersion(self.spec_path, check.sha256, check, on_this, tuple(latest_other.values()))

    def register_spec_version(self, creator: str) -> str:
        """Store the current spec file (and its appendix) as artifacts; returns the spec's id (hash)."""
        version = self.current_spec()
        spec_id = self.register_artifact(
            "spec", self.spec_path, [], creator, {"valid": version.check.ok, "file": self.settings.spec_file}
        )
        spec = version.spec
        if spec is not None and spec.edge_cases and (self.spec_path.parent / spec.edge_cases).is_file():
            self.register_artifact(
                "edge-cases",
                self.spec_path.parent / spec.edge_cases,
                [spec_id],
                creator,
                {"informative": True},
            )
        return spec_id

    def sign_spec(self, role: str, signer: Signer) -> SignatureRecord:
        """Sign the current spec content as the authenticated ``signer`` in ``role`` (business-owner or
        technical-lead), with their Ed25519 key (:func:`rlhfops.gate.auth.authenticate` makes a signer)."""
        from rlhfops.workspace.signing import require_registered, spec_signature_payload

        require_registered(self, signer, "spec sign")
        person = signer.name
        if role not in SIGNING_ROLES:
            raise UserError(f"spec sign: --role {role!r}; a spec is signed by {' or '.join(SIGNING_ROLES)}")
        self.require_role(person, role, "spec sign")
        version = self.current_spec()
        if not version.check.ok:
            first = version.check.problems[0]
            raise UserError(f"spec sign: the spec does not pass `rlhfops spec check` ({first}); fix it first")
        self.register_spec_version(person)
        record = SignatureRecord(role, person, version.hash, db.utcnow().replace(microsecond=0))
        sig = signer.sign(spec_signature_payload(role, person, version.hash, record.signed_at))
        with self.session() as s:
            s.add(
                db.Signature(
                    role=role,
                    person=person,
                    spec_hash=version.hash,
                    signed_at=record.signed_at,
                    public_key=signer.public_key,
                    signature=sig,
                )
            )
        return record

    # ---- baseline ------------------------------------------------------------------------------
    def record_baseline(
        self, values: dict[str, float], source: str, recorded_by: str, n: int | None = None, note: str = ""
    ) -> None:
        from rlhfops.workspace.baseline import check_values

        check_values(values)
        now = db.utcnow()
        with self.session() as s:
            for metric, value in values.items():
                s.add(
                    db.BaselineValue(
                        metric=metric,
                        value=float(value),
                        n=n,
                        source=source,
                        recorded_by=recorded_by,
                        recorded_at=now,
                        note=note,
                    )
                )

    def baseline(self) -> dict[str, dict[str, Any]]:
        """metric -> {value, n, source, recorded_by, recorded_at}: the latest recording of each metric."""
        out: dict[str, dict[str, Any]] = {}
        with self.session() as s:
            for r in s.scalars(sa.select(db.BaselineValue).order_by(db.BaselineValue.id)):
                out[r.metric] = {
                    "value": r.value,
                    "n": r.n,
                    "source": r.source,
                    "recorded_by": r.recorded_by,
                    "recorded_at": db.as_utc(r.recorded_at).isoformat(),
                    "note": r.note,
                }
        return out

    def baseline_values(self) -> dict[str, float]:
        """metric -> value, for :func:`rlhfops.monitor.business.compare_to_baseline`."""
        return {k: v["value"] for k, v in self.baseline().items()}

    # ---- artifacts -----------------------------------------------------------------------------
    def _record(self, s: Session, row: db.Artifact) -> ArtifactRecord:
        parents = s.scalars(
            sa.select(db.ArtifactParent.parent_id)
            .where(db.ArtifactParent.child_id == row.id)
            .order_by(db.ArtifactParent.position)
        ).all()
        return ArtifactRecord(
            row.id,
            row.kind,
            row.name,
            self.root / row.path,
            row.creator,
            db.as_utc(row.created_at),
            dict(row.meta or {}),
            tuple(parents),
        )

    def resolve_id(self, ref: str) -> str:
        """The full id of an artifact given its id or a unique prefix (at least 4 hex characters).

        Only hex digits are accepted: the prefix goes into a LIKE pattern, where ``%`` and ``_`` would be
        wildcards (``d9f%`` must not stand for any id starting with ``d9f``).
        """
        ref = ref.strip().lower()
        if len(ref) < 4:
            raise UserError(f"artifact id {ref!r}: give at least 4 characters")
        if not _ARTIFACT_REF.fullmatch(ref):
            raise UserError(
                f"artifact id {ref!r}: an id is hex digits (0-9, a-f), up to 64; "
                "give the id or a prefix of it (list them with `rlhfops artifact list`)"
            )
        with self.session() as s:
            ids = s.scalars(sa.select(db.Artifact.id).where(db.Artifact.id.like(f"{ref}%")).limit(3)).all()
        if not ids:
            raise UserError(
                f"artifact {ref!r}: not in this workspace (list them with `rlhfops artifact list`)"
            )
        if len(ids) > 1:
            raise UserError(
                f"artifact {ref!r}: ambiguous prefix ({', '.join(i[:12] for i in ids)}...); give more"
            )
        return ids[0]

    def artifact(self, ref: str) -> ArtifactRecord:
        full = self.resolve_id(ref)
        with self.session() as s:
            return self._record(s, s.get_one(db.Artifact, full))

    def artifacts(self, kind: str | None = None) -> list[ArtifactRecord]:
        """All artifacts (of ``kind``), oldest first."""
        with self.session() as s:
            q = sa.select(db.Artifact).order_by(db.Artifact.created_at, db.Artifact.id)
            if kind is not None:
                q = q.where(db.Artifact.kind == kind)
            return [self._record(s, r) for r in s.scalars(q).all()]

    def children(self, artifact_id: str) -> list[ArtifactRecord]:
        with self.session() as s:
            q = (
                sa.select(db.Artifact)
                .join(db.ArtifactParent, db.ArtifactParent.child_id == db.Artifact.id)
                .where(db.ArtifactParent.parent_id == artifact_id)
                .order_by(db.Artifact.created_at)
            )
            return [self._record(s, r) for r in s.scalars(q).all()]

    def find_by_content(self, path: Path) -> ArtifactRecord | None:
        """The artifact with the same content as ``path``, if it was registered."""
        sha = content_hash(Path(path))
        with self.session() as s:
            row = s.get(db.Artifact, sha)
            return self._record(s, row) if row is not None else None

    def register_artifact(
        self, kind: str, path: Path, parents: list[str], creator: str, meta: dict | None = None, sha: str = ""
    ) -> str:
        """Store ``path`` (file or directory) once under its content hash; returns its id.

        Identical content registered again returns the same id and writes nothing (the first
        registration's kind, parents and meta stand). Parents are ids or unique prefixes. ``sha``: the
        hash the caller just computed (a model is 0.5 GB); the stored copy is still checked against it.
        """
        if kind not in KINDS:
            raise UserError(f"artifact kind {kind!r} unknown; valid: {', '.join(KINDS)}")
        meta = dict(meta or {})
        try:
            json.dumps(meta)
        except TypeError as err:
            raise DataError(f"artifact meta for {path}: not JSON-serialisable ({err})") from None
        path = Path(path)
        sha = sha or content_hash(path)
        parent_ids = list(dict.fromkeys(self.resolve_id(p) for p in parents))
        if sha in parent_ids:
            raise DataError(f"{path}: an artifact cannot be its own parent")
        with self.session() as s:
            if s.get(db.Artifact, sha) is not None:
                return sha
        stored = store_copy(self.store_dir, sha, path)
        try:
            with self.session() as s:
                s.add(
                    db.Artifact(
                        id=sha,
                        kind=kind,
                        name=path.name,
                        path=stored.relative_to(self.root).as_posix(),
                        creator=creator,
                        created_at=db.utcnow(),
                        meta=meta,
                    )
                )
                s.flush()
                for i, pid in enumerate(parent_ids):
                    s.add(db.ArtifactParent(child_id=sha, parent_id=pid, position=i))
        except IntegrityError:  # another process registered the same content first
            with self.session() as s:
                if s.get(db.Artifact, sha) is None:
                    raise
        return sha

    def lineage(self, artifact_id: str) -> list[ArtifactRecord]:
        """The artifact and all its ancestors, breadth first (each once), starting with itself."""
        start = self.resolve_id(artifact_id)
        out: list[ArtifactRecord] = []
        seen: set[str] = set()
        frontier = [start]
        with self.session() as s:
            while frontier:
                nxt: list[str] = []
                for aid in frontier:
                    if aid in seen:
                        continue
                    seen.add(aid)
                    rec = self._record(s, s.get_one(db.Artifact, aid))
                    out.append(rec)
                    nxt.extend(rec.parents)
                frontier = nxt
        return out

    def record_training_run(
        self, stage: str, inputs: dict[str, Path | str], output: Path, creator: str, meta: dict[str, Any]
    ) -> str:
        """Register a finished training run: the current spec, each input, and the output model.

        Inputs that are artifact ids are linked; existing paths are registered (kind from the input
        name and stage); other strings (e.g. the bundled model's name) are kept in the meta.
        Returns the output model's id; its parents are the spec version and the inputs. Its meta holds
        ``attestation``: the signed statement that rlhfops trained it (:mod:`rlhfops.workspace.provenance`).
        """
        if stage not in STAGE_OUTPUT_KIND:
            raise UserError(f"unknown training stage {stage!r}; valid: {', '.join(STAGE_OUTPUT_KIND)}")
        parents = [self.register_spec_version(creator)]
        named: dict[str, str] = {}
        for name, value in inputs.items():
            p = Path(value)
            if p.exists():
                parents.append(
                    self.register_artifact(input_kind(stage, name), p, [], creator, {"input": name})
                )
            elif isinstance(value, str) and len(value) >= 4 and self._is_id(value):
                parents.append(self.resolve_id(value))
            else:
                named[name] = str(value)
        from rlhfops.workspace.provenance import ATTESTATION, training_envelope

        full_meta = {**meta, "stage": stage, "named_inputs": named}
        digest = content_hash(Path(output))  # the signed statement binds the model's content
        full_meta[ATTESTATION] = training_envelope(self, digest, stage, parents, full_meta, creator)
        kind = STAGE_OUTPUT_KIND[stage]
        return self.register_artifact(kind, Path(output), parents, creator, full_meta, digest)

    def _is_id(self, ref: str) -> bool:
        try:
            self.resolve_id(ref)
            return True
        except UserError:
            return False

    # ---- overrides and triggers ----------------------------------------------------------------
    def overrides(self, stage: str | None = None, spec_hash: str | None = None) -> list[OverrideRecord]:
        """Recorded overrides; only those signed with the person's registered key count."""
        from rlhfops.workspace.signing import override_payload, registered_keys, row_signed

        keys = registered_keys(self)
        with self.session() as s:
            q = sa.select(db.Override).order_by(db.Override.id)
            if stage is not None:
                q = q.where(db.Override.stage == stage)
            if spec_hash is not None:
                q = q.where(db.Override.spec_hash == spec_hash)
            return [
                OverrideRecord(
                    r.id, r.stage, r.play, r.spec_hash, r.blocker, r.reason, r.person, db.as_utc(r.created_at)
                )
                for r in s.scalars(q).all()
                if row_signed(
                    keys,
                    r.person,
                    r.public_key,
                    r.signature,
                    override_payload(
                        r.stage, r.play, r.spec_hash, r.blocker, r.reason, r.person, r.created_at
                    ),
                )
            ]

    def open_trigger(self, play: int, rule: str, evidence: str, source: str) -> int:
        """Record that ``play`` must be re-entered (e.g. from monitoring); returns the trigger id."""
        if play not in range(1, 6):
            raise UserError(f"trigger: play {play} does not exist (1-5)")
        with self.session() as s:
            row = db.Trigger(play=play, rule=rule, evidence=evidence, source=source, opened_at=db.utcnow())
            s.add(row)
            s.flush()
            return int(row.id)

    def close_trigger(self, trigger_id: int, person: str) -> None:
        with self.session() as s:
            row = s.get(db.Trigger, trigger_id)
            if row is None or row.closed_at is not None:
                raise UserError(f"trigger {trigger_id}: no open trigger with this id")
            row.closed_at, row.closed_by = db.utcnow(), person

    def triggers(self, open_only: bool = True) -> list[TriggerRecord]:
        with self.session() as s:
            q = sa.select(db.Trigger).order_by(db.Trigger.id)
            if open_only:
                q = q.where(db.Trigger.closed_at.is_(None))
            return [
                TriggerRecord(r.id, r.play, r.rule, r.evidence, r.source, db.as_utc(r.opened_at), r.closed_at)
                for r in s.scalars(q).all()
            ]


def find_workspace_root(start: Path | None = None) -> Path | None:
    """The root of the workspace containing ``start`` (default: cwd); $RLHFOPS_WORKSPACE wins."""
    env = os.environ.get("RLHFOPS_WORKSPACE")
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / SETTINGS_FILE).is_file()), None)


def find_workspace(start: Path | None = None) -> Workspace | None:
    """The workspace containing ``start`` (default: the current directory), or None.

    ``RLHFOPS_WORKSPACE`` overrides the search (and must point at a workspace).
    """
    root = find_workspace_root(start)
    return Workspace.open(root) if root is not None else None


def require_workspace(start: Path | None = None) -> Workspace:
    ws = find_workspace(start)
    if ws is None:
        raise WorkspaceError(
            f"no workspace here ({start or Path.cwd()} or above has no {SETTINGS_FILE}); "
            "run `rlhfops init DIR` or set RLHFOPS_WORKSPACE"
        )
    return ws
