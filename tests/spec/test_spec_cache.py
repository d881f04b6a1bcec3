"""check_spec_file caches the parse of one file content: a second call does not parse again, an edited
file (even one with the same size and modification time) is re-read, the edge-case appendix is checked
every time, and each caller gets its own copy (a changed return value does not reach the next caller)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

from rlhfops.spec import check as sc

TEMPLATE = (resources.files("rlhfops.spec") / "templates" / "support_replies.yaml").read_text(
    encoding="utf-8"
)


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    sc.clear_spec_cache()
    (tmp_path / "edge_cases.md").write_text("# edge cases\n", encoding="utf-8")
    p = tmp_path / "spec.yaml"
    p.write_text(TEMPLATE, encoding="utf-8")
    yield p
    sc.clear_spec_cache()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every parse of spec text (check_spec_text), recorded."""
    seen: list[Path] = []
    real = sc.check_spec_text

    def counting(text: str, path: Path):
        seen.append(path)
        return real(text, path)

    monkeypatch.setattr(sc, "check_spec_text", counting)
    return seen


def test_the_same_content_is_parsed_once(spec_file, parses):
    first = sc.check_spec_file(spec_file)
    second = sc.check_spec_file(spec_file)
    assert len(parses) == 1 and first.ok and second.ok
    assert second.spec == first.spec and second.sha256 == first.sha256
    assert second.spec is not first.spec  # each caller its own copy


def test_an_edited_spec_is_re_read_even_with_the_same_size_and_mtime(spec_file, parses):
    first = sc.check_spec_file(spec_file)
    st = spec_file.stat()
    edited = TEMPLATE.replace("for Juniper Lane, an online", "for Juniqer Lane, an online", 1)
    assert edited != TEMPLATE and len(edited) == len(TEMPLATE)
    spec_file.write_text(edited, encoding="utf-8")
    os.utime(spec_file, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only the bytes differ
    second = sc.check_spec_file(spec_file)
    assert len(parses) == 2 and second.sha256 != first.sha256
    assert "Juniqer" in second.spec.model_dump_json() and "Juniqer" not in first.spec.model_dump_json()
    spec_file.write_text("task: [unclosed\n", encoding="utf-8")  # a broken edit is reported, not the old spec
    broken = sc.check_spec_file(spec_file)
    assert not broken.ok and "not valid YAML" in str(broken.problems[0])


def test_a_mutated_result_does_not_leak_into_the_next_call(spec_file):
    first = sc.check_spec_file(spec_file)
    task = first.spec.task
    first.spec.task = "something else entirely"
    first.spec.success_criteria.increase[0].at_least = 0.01  # nested too
    first.problems.append(sc.SpecProblem("x:1", "task", "planted"))
    second = sc.check_spec_file(spec_file)  # a cache hit
    assert second.spec.task == task and second.problems == [] and second.ok
    assert second.spec.success_criteria.increase[0].at_least == pytest.approx(0.8)
    second.spec.task = "changed by the second caller"  # a hit's result is a copy too
    second.problems.append(sc.SpecProblem("x:1", "task", "planted"))
    third = sc.check_spec_file(spec_file)
    assert third.spec.task == task and third.problems == []


def test_the_appendix_is_checked_on_every_call(spec_file, parses):
    assert sc.check_spec_file(spec_file).ok
    (spec_file.parent / "edge_cases.md").unlink()
    missing = sc.check_spec_file(spec_file)
    assert not missing.ok and missing.problems[0].section == "edge_cases"
    (spec_file.parent / "edge_cases.md").write_text("# back\n", encoding="utf-8")
    assert sc.check_spec_file(spec_file).ok


def test_the_cache_is_bounded(tmp_path, monkeypatch, parses):
    sc.clear_spec_cache()
    monkeypatch.setattr(sc, "CACHE_SIZE", 2)
    (tmp_path / "edge_cases.md").write_text("x\n", encoding="utf-8")
    files = []
    for i in range(3):
        p = tmp_path / f"s{i}.yaml"
        p.write_text(TEMPLATE + f"# {i}\n", encoding="utf-8")
        files.append(p)
        sc.check_spec_file(p)
    assert len(sc._CACHE) == 2
    sc.check_spec_file(files[2])  # still cached
    sc.check_spec_file(files[0])  # evicted: parsed again
    assert len(parses) == 4
    sc.clear_spec_cache()
