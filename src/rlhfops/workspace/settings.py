"""Workspace settings: ``rlhfops.yaml`` at the workspace root.

Other parts of rlhfops may keep their own sections in the same file (e.g. ``monitor:``); unknown
top-level sections are kept as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlhfops.errors import ConfigError

SETTINGS_FILE = "rlhfops.yaml"
DEFAULT_DB_FILE = "rlhfops.db"


class WorkspaceSettings(BaseModel):
    """The settings in ``rlhfops.yaml``."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(..., min_length=1, description="Name of the project (shown in status).")
    spec_file: str = Field("spec.yaml", description="The task spec, relative to the workspace root.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database; empty means SQLite in rlhfops.db at the root. "
        "The environment variable RLHFOPS_DATABASE_URL overrides it (keep passwords out of this file).",
    )
    artifacts_dir: str = Field("artifacts", description="Artifact store, relative to the workspace root.")


def load_settings(root: Path) -> WorkspaceSettings:
    """Read ``root/rlhfops.yaml`` with one-line errors."""
    path = root / SETTINGS_FILE
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; create a workspace with `rlhfops init DIR`") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings (name:, spec_file:, ...)")
    try:
        return WorkspaceSettings.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{path}: {loc}={first.get('input')!r}: {first['msg']}") from None


def write_settings(root: Path, settings: WorkspaceSettings) -> Path:
    path = root / SETTINGS_FILE
    header = (
        "# rlhfops workspace settings. The database URL can also come from RLHFOPS_DATABASE_URL\n"
        "# (which wins); keep passwords out of this file.\n"
    )
    body = yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
    path.write_text(header + body, encoding="utf-8")
    return path
