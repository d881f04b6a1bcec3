"""Create a workspace: settings, the spec from a template, the artifact store and the database."""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from rlhfops.errors import ConfigError
from rlhfops.workspace.attest import KEY_DIR, ensure_key
from rlhfops.workspace.core import Workspace, WorkspaceError
from rlhfops.workspace.settings import DEFAULT_DB_FILE, SETTINGS_FILE, WorkspaceSettings, write_settings

TEMPLATES = {"blank": "blank", "support-replies": "support_replies"}


def init_workspace(directory: str | Path, template: str = "blank", name: str | None = None) -> Workspace:
    """Create a workspace: rlhfops.yaml, spec.yaml (+ edge_cases.md) from ``template``, the database.

    Nothing is left behind when a step fails (e.g. the database cannot be reached).
    """
    if template not in TEMPLATES:
        raise ConfigError(f"init: --template {template!r} unknown; valid: {', '.join(TEMPLATES)}")
    root = Path(directory).resolve()
    if (root / SETTINGS_FILE).exists():
        raise WorkspaceError(f"{root}: already a workspace ({SETTINGS_FILE} exists)")
    settings = WorkspaceSettings(name=name or root.name)
    spec_path, edge_path = root / settings.spec_file, root / "edge_cases.md"
    for p in (spec_path, edge_path):
        if p.exists():
            raise WorkspaceError(f"{p}: exists; init would overwrite it (move it away or init elsewhere)")
    made_root = not root.exists()
    created: list[Path] = []
    try:
        root.mkdir(parents=True, exist_ok=True)
        base = resources.files("rlhfops.spec") / "templates"
        stem = TEMPLATES[template]
        spec_path.write_text((base / f"{stem}.yaml").read_text(encoding="utf-8"), encoding="utf-8")
        created.append(spec_path)
        edge_path.write_text((base / f"{stem}_edge_cases.md").read_text(encoding="utf-8"), encoding="utf-8")
        created.append(edge_path)
        (root / settings.artifacts_dir).mkdir(exist_ok=True)
        created.append(root / settings.artifacts_dir)
        created.append(write_settings(root, settings))
        ws = Workspace(root, settings)
        if ws.database_url.startswith("sqlite"):
            created.append(root / DEFAULT_DB_FILE)
            created += [root / f"{DEFAULT_DB_FILE}-wal", root / f"{DEFAULT_DB_FILE}-shm"]
            _create_private(root / DEFAULT_DB_FILE)
        ws.upgrade_db()
        if not (root / KEY_DIR).exists():
            created.append(root / KEY_DIR)
        ensure_key(root)  # the key that signs the evidence the gate reads (keys/, 0600)
        return ws
    except BaseException:
        for p in reversed(created):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists():
                p.unlink()
        if made_root:
            shutil.rmtree(root, ignore_errors=True)
        raise


def _create_private(path: Path) -> None:
    """Create the empty SQLite file 0600 (it holds password hashes); SQLite gives its -wal and -shm
    files the database file's permissions."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
