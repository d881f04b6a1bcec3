"""tests/ mirrors src/rlhfops/ (issue 18): the tests of a package or module live at tests/<its name>/.

A directory under tests/ names a package of src/rlhfops (``tests/gate`` -> ``rlhfops/gate/``), a module
(``rlhfops/<name>.py``) or a family of modules (``tests/demo`` -> ``rlhfops/demo_*.py``). Below that, a
directory names a submodule of that package or, for a package that hosts others (HOSTS: the web app),
the package whose part it tests (``tests/web/gate`` -> the gate pages of ``rlhfops/web``). The few
cross-cutting directories are listed in ALLOWED with their reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src" / "rlhfops"

ALLOWED = {
    "docs": "README and docs/ against the CLI: cross-cutting",
    "helpers": "helper modules and shared fixtures (no tests)",
    "suite": "how the test suite itself runs (make test's parallel workers): cross-cutting",
}
ROOT_FILES = {
    "__init__.py",
    "conftest.py",
    "test_layout.py",
    "test_architecture.py",
}  # the two whole-tree rules
HOSTS = {"web": "the web app mounts the pages and APIs of other packages: tests/web/<package>/"}


def _is_unit(parent: Path, name: str) -> bool:
    """``name`` is a package, a module or a family of modules (``name_*.py``) in ``parent``."""
    return (
        (parent / name / "__init__.py").is_file()
        or (parent / f"{name}.py").is_file()
        or any(parent.glob(f"{name}_*.py"))
    )


def _dirs(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_dir() and "__pycache__" not in p.parts and not p.name.startswith(".")
    )


def layout_problems(tests: Path, src: Path, allowed: dict[str, str]) -> list[str]:
    """Each directory of ``tests`` that does not mirror ``src``, with what it should name."""
    problems = [f"{name}: allowed but missing" for name in sorted(allowed) if not (tests / name).is_dir()]
    for f in sorted(tests.glob("*.py")):
        if f.name not in ROOT_FILES:
            problems.append(f"{f.name}: a test module at the top of tests/ (move it to tests/<package>/)")
    for d in _dirs(tests):
        rel = d.relative_to(tests)
        top = rel.parts[0]
        if top in allowed:
            continue
        if len(rel.parts) == 1:
            ok = _is_unit(src, top)
        else:
            parent = src.joinpath(*rel.parts[:-1])
            hosted = len(rel.parts) == 2 and top in HOSTS and _is_unit(src, rel.parts[1])
            ok = _is_unit(parent, rel.parts[-1]) or hosted
        if not ok:
            problems.append(f"{rel.as_posix()}: no package or module rlhfops/{rel.as_posix()} to mirror")
    if (tests / "helpers").is_dir():
        problems += [
            f"helpers/{t.name}: a test module among the helpers"
            for t in (tests / "helpers").glob("test_*.py")
        ]
    return problems


def test_every_test_directory_mirrors_a_package_or_module() -> None:
    assert layout_problems(TESTS, SRC, ALLOWED) == []


def _tree(root: Path, files: list[str]) -> Path:
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("", encoding="utf-8")
    return root


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    src = _tree(
        tmp_path / "src",
        ["gate/__init__.py", "gate/decide.py", "web/__init__.py", "config.py", "demo_plays.py"],
    )
    return tmp_path / "tests", src


@pytest.mark.parametrize(
    "files",
    [
        ["gate/test_a.py"],  # a package
        ["config/test_a.py"],  # a module
        ["demo/test_a.py"],  # a family of modules
        ["gate/decide/test_a.py"],  # a submodule
        ["web/gate/test_a.py"],  # the web app's part for another package
        ["docs/test_a.py"],  # allowed
        ["conftest.py", "test_layout.py"],
    ],
)
def test_mirrors_are_accepted(fake, files: list[str]) -> None:
    tests, src = fake
    _tree(tests, [*files, "docs/x.py"])
    assert layout_problems(tests, src, {"docs": "why"}) == []


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        (["gate_web/test_a.py"], "gate_web: no package or module rlhfops/gate_web"),
        (["spec/test_a.py"], "spec: no package"),
        (["gate/web/test_a.py"], "gate/web: no package"),  # web is a top-level package, but not below gate
        (["web/gate/pages/test_a.py"], "web/gate/pages: no package"),
        (["test_stray.py"], "test_stray.py: a test module at the top"),
        (["helpers/test_a.py"], "helpers/test_a.py: a test module among the helpers"),
    ],
)
def test_what_does_not_mirror_is_named(fake, files: list[str], problem: str) -> None:
    tests, src = fake
    _tree(tests, [*files, "docs/x.py", "helpers/h.py"])
    problems = layout_problems(tests, src, {"docs": "why", "helpers": "why"})
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def test_an_allowed_directory_that_is_gone_is_named(fake) -> None:
    tests, src = fake
    _tree(tests, ["gate/test_a.py"])
    assert layout_problems(tests, src, {"docs": "why"}) == ["docs: allowed but missing"]
