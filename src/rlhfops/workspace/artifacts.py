"""The artifact store with lineage: the half of :class:`rlhfops.workspace.core.Workspace` that stores.

Every file or directory a play produces is stored once under its content hash (``store.store_copy``)
with its kind, creator, meta and parents; :meth:`ArtifactStore.lineage` walks the parents back to the
spec version. :class:`ArtifactStore` is mixed into ``Workspace``, which provides the root, the database
session, the store directory and the spec version a training run links to.
"""

from __future__ import annotations

import json
import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rlhfops.errors import DataError, UserError
from rlhfops.workspace import db
from rlhfops.workspace.kinds import STAGE_OUTPUT_KIND, input_kind
from rlhfops.workspace.provenance import ATTESTATION, training_envelope
from rlhfops.workspace.store import KINDS, ArtifactRecord, content_hash, store_copy

_ARTIFACT_REF = re.compile(r"[0-9a-f]{4,64}")  # a SHA-256 hex digest or a prefix of one


class ArtifactStore:
    """Register, resolve and trace artifacts. Mixed into :class:`~rlhfops.workspace.core.Workspace`."""

    root: Path

    if TYPE_CHECKING:  # provided by Workspace

        @property
        def store_dir(self) -> Path: ...

        def session(self) -> AbstractContextManager[Session]: ...

        def register_spec_version(self, creator: str) -> str: ...

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
        self,
        kind: str,
        path: Path,
        parents: list[str],
        creator: str,
        meta: dict[str, Any] | None = None,
        sha: str = "",
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
