"""Read and check a task spec file: every problem named with file:line, section and what to write.

:func:`check_spec_file` returns all problems at once (one per missing section, so a new spec can be
filled in one pass); :func:`load_spec` raises the first one as a :class:`SpecError`.
The spec's content hash is the SHA-256 of the file's bytes: any change, even a comment, is a new
version and makes earlier signatures stale.

:func:`check_spec_file` is called many times per command (the gate reads the current spec for every
model and threshold): the parse and validation of one file content are cached, keyed by the resolved
path, modification time, size and the SHA-256 of the bytes (read anyway, for the hash), at most
:data:`CACHE_SIZE` entries. Any edit is a new key and is re-read; whether the edge-case appendix exists
is checked on every call. Each call returns its own copy (a deep copy of the spec), so a caller that
changes what it got cannot change what the next caller gets.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rlhfops.errors import ConfigError
from rlhfops.spec.schema import TaskSpec


class SpecError(ConfigError):
    """The task spec file is missing, not YAML, or does not fit the schema."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec: where (file:line), the dotted section path, and the message."""

    where: str
    section: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.section}: {self.message}"


@dataclass
class SpecCheck:
    """Result of checking a spec file: the parsed spec (None when invalid), its hash and problems."""

    path: Path
    sha256: str
    spec: TaskSpec | None
    problems: list[SpecProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path (and list index as str) of a YAML document to its 1-based line."""
    out: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out

    def walk(node: Any, path: tuple[str, ...]) -> None:
        out[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                kpath = (*path, str(key.value))
                walk(value, kpath)
                out[kpath] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return out


def _field_description(loc: tuple[Any, ...]) -> str:
    """The description of the schema field at ``loc`` (list indices skipped)."""
    model: type[BaseModel] | None = TaskSpec
    desc = ""
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(str(part))
        if info is None:
            return desc
        desc = info.description or ""
        ann = info.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return desc


def _problem(path: Path, lines: dict[tuple[str, ...], int], err: dict[str, Any]) -> SpecProblem:
    loc = tuple(err["loc"])
    key = tuple(str(p) for p in loc)
    section = ".".join(key) or "(spec)"
    # the nearest enclosing node that exists in the file gives the line
    line = next((lines[key[:i]] for i in range(len(key), -1, -1) if key[:i] in lines), 1)
    where = f"{path}:{line}"
    kind = err["type"]
    if kind == "missing":
        desc = _field_description(loc)
        return SpecProblem(where, section, f"missing section; add it: {desc}")
    if kind == "extra_forbidden":
        return SpecProblem(where, section, "unknown key; remove it or check its spelling (see the template)")
    msg = err["msg"].removeprefix("Value error, ")
    if kind in ("string_too_short", "too_short"):
        desc = _field_description(loc)
        return SpecProblem(where, section, f"empty; fill it in: {desc}")
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    return SpecProblem(where, section, f"{msg}{shown}")


def check_spec_text(text: str, path: Path) -> SpecCheck:
    """Check spec YAML text (``path`` is used in messages and for the hash label only)."""
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = SpecProblem(f"{path}:{line}", "(spec)", f"not valid YAML ({getattr(err, 'problem', err)})")
        return SpecCheck(path, sha, None, [problem])
    if not isinstance(data, dict):
        problem = SpecProblem(f"{path}:1", "(spec)", "expected a mapping of sections (task:, audience:, ...)")
        return SpecCheck(path, sha, None, [problem])
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as err:
        lines = _line_index(text)
        return SpecCheck(path, sha, None, [_problem(path, lines, e) for e in err.errors()])
    problems: list[SpecProblem] = []
    if spec.edge_cases:
        appendix = path.parent / spec.edge_cases
        if not appendix.is_file():
            lines = _line_index(text)
            problems.append(
                SpecProblem(
                    f"{path}:{lines.get(('edge_cases',), 1)}",
                    "edge_cases",
                    f"appendix file {appendix} not found; create it or remove the key",
                )
            )
    return SpecCheck(path, sha, spec, problems)


CACHE_SIZE = 16
_CACHE: OrderedDict[tuple[str, int, int, str], tuple[SpecCheck, bool | None]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _copy(check: SpecCheck) -> SpecCheck:
    spec = check.spec.model_copy(deep=True) if check.spec is not None else None
    return replace(check, spec=spec, problems=list(check.problems))


def _appendix_exists(check: SpecCheck) -> bool | None:
    """Whether the spec's edge-case appendix file exists now (None: the spec names none)."""
    if check.spec is None or not check.spec.edge_cases:
        return None
    return (check.path.parent / check.spec.edge_cases).is_file()


def clear_spec_cache() -> None:
    """Forget every cached check (tests; nothing else needs it: an edited file is a new key)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def check_spec_file(path: str | Path) -> SpecCheck:
    """Check a spec file; every problem is returned (none raised) except a missing file. Cached per file
    content (module docstring); the result is the caller's own copy."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: spec file not found; create it with `rlhfops init` or point spec_file at it")
    # hash the bytes exactly as stored (text decoding must not hide a change)
    st = p.stat()
    raw = p.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size, sha)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is not None and hit[0].path == p and _appendix_exists(hit[0]) == hit[1]:
        return _copy(hit[0])
    check = _check_bytes(p, raw, sha)
    with _CACHE_LOCK:
        _CACHE[key] = (_copy(check), _appendix_exists(check))
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return check


def _check_bytes(p: Path, raw: bytes, sha: str) -> SpecCheck:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:  # one problem: the file is not text we can read, nothing else is known
        line = raw.count(b"\n", 0, err.start) + 1
        problem = SpecProblem(
            f"{p}:{line}", "(spec)", f"not valid UTF-8 (byte offset {err.start}); save the file as UTF-8"
        )
        return SpecCheck(p, sha, None, [problem])
    check = check_spec_text(text, p)
    check.sha256 = sha
    return check


def load_spec(path: str | Path) -> TaskSpec:
    """The parsed spec, or :class:`SpecError` naming the first problem (and how many more)."""
    check = check_spec_file(path)
    if not check.ok:
        more = (
            f" (and {len(check.problems) - 1} more: run `rlhfops spec check`)"
            if len(check.problems) > 1
            else ""
        )
        raise SpecError(f"{check.problems[0]}{more}")
    return check.spec  # type: ignore[return-value]  # ok implies spec is not None
