"""Shipped red-team suites: six categories, >= 30 items each, valid; the loader names file:line on errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhfops.errors import DataError, UserError
from rlhfops.redteam.suite import EXPECTED, list_suites, load_suite, shipped_suites

CATEGORIES = {
    "harmful_requests": "refuse",
    "false_premise_sycophancy": "correct_premise",
    "no_reliable_answer": "hedge",
    "benign_but_risky_looking": "help",
    "prompt_injection": "ignore_injection",
    "adversarial_client": "stay_professional",
}


def test_six_categories_each_at_least_30_items_with_their_expected_behaviour():
    counts = list_suites()
    assert set(counts) == set(CATEGORIES)
    for cat, expected in CATEGORIES.items():
        suite = load_suite(cat)
        assert len(suite.items) >= 30, cat
        assert {i.expected for i in suite.items} == {expected}
        assert {i.category for i in suite.items} == {cat}
        assert len({i.prompt for i in suite.items}) == len(suite.items), f"{cat}: duplicate prompts"


def test_redteam_reference_loads_every_category_with_unique_ids():
    suite = load_suite("redteam")
    assert suite.is_redteam
    assert suite.categories() == list_suites()
    assert len({i.id for i in suite.items}) == len(suite.items)


def test_harmful_requests_are_seeded_from_the_bundled_hh_rlhf_slice():
    import gzip

    from rlhfops.datasets import hh_rlhf_harmless_path

    first_turns = set()
    with gzip.open(hh_rlhf_harmless_path(), "rt") as f:
        for line in f:
            first_turns.add(
                json.loads(line)["chosen"].split("\n\nHuman: ")[1].split("\n\nAssistant:")[0].strip()
            )
    seeded = [i for i in load_suite("harmful_requests").items if i.notes and "HH-RLHF" in i.notes]
    assert len(seeded) >= 10
    assert all(i.prompt in first_turns for i in seeded)


def test_injection_items_plant_their_canary_in_the_prompt():
    for item in load_suite("prompt_injection").items:
        assert item.canary and item.canary in item.prompt


def test_heldout_suite_and_team_suite_dir(tmp_path: Path):
    held = load_suite("support-heldout")
    assert not held.is_redteam and len(held.items) == 120
    # the 50 prompts where the shop is not at fault measure only the refusal criterion
    up_b = "apologises and offers a remedy when the shop is at fault"
    assert sum(not i.measures(up_b) for i in held.items) == 50
    assert all(i.measures("refuses a benign request") for i in held.items)
    d = tmp_path / "team"
    d.mkdir()
    (d / "a.jsonl").write_text(
        '{"suite": "team", "behaviours": {"says thanks": "apology"}}\n'
        '{"id": "t1", "category": "tone", "prompt": "hi", "expected": "help", "max_words": 50}\n'
    )
    (d / "b.jsonl").write_text('{"id": "t2", "category": "tone", "prompt": "hey", "expected": "hedge"}\n')
    suite = load_suite(str(d))
    assert [i.id for i in suite.items] == ["t1", "t2"]
    assert suite.behaviours == {"says thanks": "apology"}
    assert suite.items[0].max_words == 50


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "prompt": "p", "expected": "obey"}', "expected='obey'"),
        ('{"id": "x", "prompt": ""}', "'prompt'"),
        ('{"id": "x", "prompt": "p", "colour": 1}', "unknown field"),
        ('{"id": "x", "prompt": "p", "expected": "ignore_injection"}', "canary"),
        ('{"id": "x", "prompt": "p", "must_match": "("}', "invalid regex"),
        ("{not json", "invalid JSON"),
        ('{"id": "x", "prompt": "p", "criteria": "tone"}', "'criteria' must be a list"),
        ('{"id": "x", "prompt": "p", "criteria": ["tone", ""]}', "'criteria' must be a list"),
    ],
)
def test_loader_errors_name_file_and_line(tmp_path: Path, line: str, message: str):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"id": "ok", "prompt": "fine", "expected": "help"}\n\n' + line + "\n")
    with pytest.raises(DataError) as err:
        load_suite(str(f))
    assert f"{f}:3" in str(err.value) and message in str(err.value)


def test_duplicate_ids_and_unknown_reference(tmp_path: Path):
    f = tmp_path / "dup.jsonl"
    f.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n')
    with pytest.raises(DataError, match=r"dup.jsonl:2: duplicate id 'a' \(first at .*dup.jsonl:1\)"):
        load_suite(str(f))
    with pytest.raises(UserError, match="rlhfops redteam list"):
        load_suite("no-such-suite")


def test_shipped_files_are_package_data():
    files = shipped_suites()
    assert all(p.suffix == ".jsonl" and p.exists() for p in files.values())
    assert set(EXPECTED) == set(CATEGORIES.values())
