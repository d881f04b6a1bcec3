"""The workspace: settings, database (SQLite WAL or PostgreSQL, Alembic migrations), people and roles,
task-spec sign-offs, business baseline, content-addressed artifact store with lineage, play order and
status.

Public API for the training stages::

    ws = find_workspace()                      # None outside a workspace
    plays.check_stage_ready(ws, "sft", {"data": path})  # raises PlayOrderError (one line) when blocked
    model_id = ws.record_training_run("sft", {"data": path, "model": base}, final_dir, creator, meta)
    ws.register_artifact(kind, path, parents, creator, meta) -> id
    ws.lineage(model_id) -> list[ArtifactRecord]
    ws.current_spec() -> SpecVersion
"""

from rlhfops.workspace.core import (
    SIGNING_ROLES,
    OverrideRecord,
    SignatureRecord,
    SpecVersion,
    Workspace,
    WorkspaceError,
    find_workspace,
    require_workspace,
)
from rlhfops.workspace.create import TEMPLATES, init_workspace
from rlhfops.workspace.identity import ROLES, acting_person
from rlhfops.workspace.store import KINDS, ArtifactRecord, content_hash

__all__ = [
    "KINDS",
    "ROLES",
    "SIGNING_ROLES",
    "TEMPLATES",
    "ArtifactRecord",
    "OverrideRecord",
    "SignatureRecord",
    "SpecVersion",
    "Workspace",
    "WorkspaceError",
    "acting_person",
    "content_hash",
    "find_workspace",
    "init_workspace",
    "require_workspace",
]
