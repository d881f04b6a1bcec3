"""Workspace settings: ``rlhfops.yaml`` at the workspace root.

Other parts of rlhfops keep their own sections in the same file (:data:`SECTIONS`: ``annotation:``,
``judge:``, ``monitor:``, ``web:``); each part checks its own section when it reads it. Any other
top-level key is refused when the file is read, naming the closest valid key (a misspelt
``databse_url:`` must not silently fall back to the default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlhfops.config import closest_key, validation_error
from rlhfops.errors import ConfigError

SETTINGS_FILE = "rlhfops.yaml"
DEFAULT_DB_FILE = "rlhfops.db"
# Sections read by other parts of rlhfops (each validates its own contents): add a section here when a
# new part of rlhfops reads one.
SECTIONS = ("annotation", "judge", "monitor", "web")


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
        text = path.read_bytes().decode("utf-8")
        data: Any = yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; create a workspace with `rlhfops init DIR`") from None
    except UnicodeDecodeError as err:
        text_line = err.object.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"{path}:{text_line}: not valid UTF-8 (byte offset {err.start}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings (name:, spec_file:, ...)")
    _check_top_level_keys(path, text, data)
    try:
        return WorkspaceSettings.model_validate(data)
    except ValidationError as err:
        raise validation_error(WorkspaceSettings, err, str(path)) from None


def _check_top_level_keys(path: Path, text: str, data: dict[Any, Any]) -> None:
    """Refuse a top-level key that is neither a setting nor a known section, naming the closest valid one."""
    valid = [*WorkspaceSettings.model_fields, *SECTIONS]
    unknown = [k for k in data if k not in valid]
    if not unknown:
        return
    key = unknown[0]
    line = _key_line(text, key)
    raise ConfigError(f"{path}{line}: unknown key '{key}'{closest_key(str(key), valid)}")


def _key_line(text: str, key: Any) -> str:
    """``:N`` (1-based line of the top-level ``key``) or "" when the document cannot be composed."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return ""
    for k, _ in getattr(node, "value", []) if isinstance(node, yaml.MappingNode) else []:
        if k.value == str(key):
            return f":{k.start_mark.line + 1}"
    return ""


def write_settings(root: Path, settings: WorkspaceSettings) -> Path:
    path = root / SETTINGS_FILE
    header = (
        "# rlhfops workspace settings. The database URL can also come from RLHFOPS_DATABASE_URL\n"
        "# (which wins); keep passwords out of this file.\n"
    )
    body = yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
    path.write_text(header + body, encoding="utf-8")
    return path
