"""config.validation_error / validate_section / settings_section: the one formatter every settings loader
uses (workspace settings, judge:, web:, annotation:, monitor.drift, drift overrides)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from rlhfops.config import settings_section, validate_section
from rlhfops.errors import ConfigError


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    depth: int = Field(1, ge=1)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: float = Field(60.0, gt=0)
    kind: str | int = "rule"
    inner: Inner = Inner()


class Settings(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = "ws"


def test_validate_section_defaults_and_values():
    assert validate_section(Section, None, "rlhfops.yaml", "judge.") == Section()
    assert validate_section(Section, {"timeout": 5}, "rlhfops.yaml", "judge.").timeout == 5.0


def test_bad_value_names_section_field_value_and_reason():
    with pytest.raises(ConfigError) as e:
        validate_section(Section, {"timeout": 0}, "rlhfops.yaml", "judge.")
    assert str(e.value) == "rlhfops.yaml: judge.timeout=0: Input should be greater than 0"
    with pytest.raises(ConfigError) as e:  # nested field: the dotted path of fields
        validate_section(Section, {"inner": {"depth": 0}}, "rlhfops.yaml", "judge.")
    assert str(e.value) == "rlhfops.yaml: judge.inner.depth=0: Input should be greater than or equal to 1"
    with pytest.raises(ConfigError) as e:  # a union: each member's reason, one line, no member tags
        validate_section(Section, {"kind": [1]}, "cfg.yaml")
    assert str(e.value) == (
        "cfg.yaml: kind=[1]: Input should be a valid string; or Input should be a valid integer"
    )


def test_unknown_key_names_the_closest():
    with pytest.raises(ConfigError) as e:
        validate_section(Section, {"timout": 1}, "rlhfops.yaml", "web.")
    assert str(e.value) == "rlhfops.yaml: unknown key 'web.timout'; did you mean 'timeout'?"


def test_settings_section_reads_extras_only():
    s = Settings.model_validate({"name": "x", "judge": {"kind": "rule"}})
    assert settings_section(s, "judge") == {"kind": "rule"}
    assert settings_section(s, "web") is None
    assert settings_section(s, "name") is None  # a declared field is not a section


def test_every_settings_loader_uses_the_one_formatter():
    """No module outside config.py reads model_extra or formats a ValidationError itself."""
    import ast
    from pathlib import Path

    import rlhfops

    src = Path(rlhfops.__file__).parent
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.name == "config.py" and path.parent == src:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "model_extra":
                found.append(f"{path.relative_to(src)}:{node.lineno} model_extra")
            if isinstance(node, ast.Constant) and node.value == "model_extra":
                found.append(f"{path.relative_to(src)}:{node.lineno} 'model_extra'")
            if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name):
                if node.type.id == "ValidationError" and "errors" in ast.unparse(node):
                    found.append(f"{path.relative_to(src)}:{node.lineno} formats a ValidationError")
    # spec/check.py turns every error into a line-numbered SpecProblem (a different report, kept)
    assert [f for f in found if not f.startswith("spec/check.py")] == []
