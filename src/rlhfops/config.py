"""Typed stage configs: loaded from YAML, overridden with ``--set key=value``, checked with clear errors.

Every stage has one pydantic model deriving from :class:`StageConfig`. Every field carries a
``description``; ``--help`` and docs are generated from them. Unknown keys are refused with the closest
valid name; type errors name the field and the value.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from rlhfops.errors import ConfigError

C = TypeVar("C", bound="StageConfig")
M = TypeVar("M", bound=BaseModel)
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class StageConfig(BaseModel):
    """Base of every stage config: no unknown keys, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def closest_key(name: str, valid: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``valid`` to ``name``, else the list of valid keys."""
    match = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f"; valid keys: {', '.join(sorted(valid))}"


def _set_dotted(target: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = target
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section")
    node[parts[-1]] = value


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML scalars (``lr=1e-5``, ``lora=true``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set learning_rate=1e-5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _FLOAT.fullmatch(value):
            value = float(value)  # YAML 1.1 reads "1e-5" as a string
        _set_dotted(out, key.strip(), value)
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def check_keys(cls: type[BaseModel], data: dict[str, Any], where: str, prefix: str = "") -> None:
    """Refuse a key of ``data`` (nested sections too) that ``cls`` lacks: one ConfigError naming the closest.

    ``where`` starts the message (a file name or ``--set``); ``prefix`` is the dotted path of ``data``.
    """
    valid = list(cls.model_fields)
    for key, value in data.items():
        if key not in cls.model_fields:
            raise ConfigError(f"{where}: unknown key '{prefix}{key}'{closest_key(key, valid)}")
        ann = cls.model_fields[key].annotation
        if isinstance(value, dict) and isinstance(ann, type) and issubclass(ann, BaseModel):
            check_keys(ann, value, where, prefix=f"{prefix}{key}.")


def load_config(
    cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None, stage: str | None = None
) -> C:
    """Build a ``cls`` from an optional YAML file plus ``--set`` overrides.

    A run directory's ``config.yaml`` can be given as it is: its ``stage`` key is accepted when it names
    ``stage`` (the stage being run) and refused, naming the right command, when it names another.

    Raises :class:`ConfigError` (one line) for a missing/invalid file, an unknown key (naming the
    closest valid one) or a value that does not validate (naming the field and the value).
    """
    data: dict[str, Any] = {}
    where = "config"
    if path is not None:
        p = Path(path)
        where = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{p}{line}: not valid YAML ({getattr(err, 'problem', err)})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of settings at the top level")
        data = loaded
        if stage is not None and "stage" in data and "stage" not in cls.model_fields:
            written = data.pop("stage")
            if written != stage:
                raise ConfigError(
                    f"{p}: written by a '{written}' run; use `rlhfops train {written} --config {p}`"
                )
    check_keys(cls, data, where)
    extra = parse_overrides(overrides)
    check_keys(cls, extra, "--set")
    data = _merge(data, extra)
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise validation_error(cls, err, where) from None


def validation_error(cls: type[BaseModel], err: ValidationError, where: str, prefix: str = "") -> ConfigError:
    """The one-line ConfigError for a pydantic ValidationError of ``cls``: ``where: field=value: reason``.

    ``field`` is the dotted path of config fields (``prefix`` first, e.g. ``"judge."`` for a section of
    rlhfops.yaml); a union field fails once per member, and all its reasons are joined in the line.
    Every settings loader uses this, so all say the same thing the same way.
    """
    errors = err.errors()
    loc = _field_path(cls, errors[0]["loc"])
    value = errors[0].get("input")
    msgs = list(dict.fromkeys(e["msg"] for e in errors if _field_path(cls, e["loc"]) == loc))
    name = (prefix + ".".join(loc)).rstrip(".") or "(config)"
    return ConfigError(f"{where}: {name}={value!r}: {'; or '.join(msgs)}")


def validate_section(cls: type[M], raw: Any, where: str, prefix: str = "") -> M:
    """Validate a settings section ``raw`` (None = defaults) as ``cls``.

    An unknown key names the closest valid one (:func:`check_keys`); a bad value gives
    :func:`validation_error`'s line. ``prefix`` is the section's dotted path with a trailing dot.
    """
    raw = {} if raw is None else raw
    if isinstance(raw, dict):
        check_keys(cls, raw, where, prefix=prefix)
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        raise validation_error(cls, err, where, prefix) from None


def settings_section(settings: BaseModel, name: str) -> Any:
    """The raw ``name:`` section of the workspace settings (rlhfops.yaml), None when absent.

    Sections other than the top-level settings are kept as pydantic extras; this is the one place that
    reads them, so no caller reaches into ``model_extra``.
    """
    return (getattr(settings, "model_extra", None) or {}).get(name)


def _field_path(cls: type[BaseModel], loc: tuple) -> tuple[str, ...]:
    """The part of a pydantic error location that names config fields (no union-member tags)."""
    out: list[str] = []
    model: Any = cls
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            break
        out.append(str(part))
        model = fields[part].annotation
    return tuple(out)


def describe_fields(cls: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, description) for every field, nested sections flattened with dots."""
    rows: list[tuple[str, str, str]] = []
    for name, field in cls.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe_fields(ann, prefix=f"{prefix}{name}."))
            continue
        default = "(required)" if field.is_required() else repr(field.get_default(call_default_factory=True))
        rows.append((f"{prefix}{name}", default, field.description or ""))
    return rows
