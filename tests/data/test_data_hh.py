"""rlhfops.data.hh: HH-RLHF import on the shipped real file and on hand-written edge cases."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rlhfops.data.hh import convert_hh_rlhf, import_hh_rlhf
from rlhfops.data.io import read_rows
from rlhfops.data.schema import prefs_from_rows, validate_prefs
from rlhfops.datasets import hh_rlhf_harmless_path
from rlhfops.errors import DataError


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "hh.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def test_shipped_file_is_inside_the_package_with_license() -> None:
    path = hh_rlhf_harmless_path()
    assert path.name == "test-first1500.jsonl.gz"
    assert "rlhfops" in path.parts and "shared" not in path.parts
    assert "MIT License" in (path.parent / "LICENSE").read_text()
    assert (path.parent / "README.md").is_file()


def test_real_file_all_1500_rows() -> None:
    result = convert_hh_rlhf(hh_rlhf_harmless_path())
    assert result.total == 1500
    assert len(result.rows) == 1495
    assert [(s.line, s.reason) for s in result.skipped] == [
        (87, "empty final reply in chosen"),
        (517, "empty final reply in chosen"),
        (926, "empty final reply in chosen"),
        (1104, "empty final reply in chosen"),
        (1255, "chosen and rejected differ before the last Assistant reply"),
    ]
    rows = result.rows
    # shapes: prompts start and end with the user; turns alternate except in 3 real rows where the
    # dialogue has two Assistant turns in a row (kept as they are); replies are non-empty text
    turns = Counter(len(r["prompt"]) for r in rows)
    assert sorted(turns.items()) == [
        (1, 439),
        (3, 380),
        (4, 1),
        (5, 375),
        (7, 214),
        (9, 50),
        (11, 12),
        (12, 1),
        (13, 11),
        (15, 3),
        (17, 4),
        (18, 1),
        (19, 1),
        (21, 1),
        (23, 1),
        (35, 1),
    ]
    not_alternating = 0
    for r in rows:
        roles = [m["role"] for m in r["prompt"]]
        assert roles[0] == roles[-1] == "user" and set(roles) <= {"user", "assistant"}
        not_alternating += roles != ["user", "assistant"] * (len(roles) // 2) + ["user"]
        assert all(m["content"] == m["content"].strip() and m["content"] for m in r["prompt"])
        assert r["chosen"] and r["rejected"] and r["chosen"] != r["rejected"]
    assert not_alternating == 3
    # every converted row passes the preference schema (as training reads it)
    from rlhfops.data.io import Row

    as_rows = [Row(r, i, "hh") for i, r in enumerate(rows, 1)]
    assert validate_prefs(as_rows) == []
    first = rows[0]
    assert first["prompt"][0] == {"role": "user", "content": "what are some pranks with a pen i can do?"}
    assert first["prompt"][-1]["content"] == "okay some of these do not have anything to do with pens"
    assert first["chosen"].startswith("No, sorry!  All of these involve a pen")
    assert first["rejected"].startswith("There are lots of funny things you can do with pens")


def test_real_file_round_trips_through_jsonl(tmp_path: Path) -> None:
    from rlhfops.data.io import write_rows

    rows = import_hh_rlhf(hh_rlhf_harmless_path())
    out = write_rows(tmp_path / "hh.jsonl", rows)
    prefs = prefs_from_rows(read_rows(out))
    assert len(prefs) == 1495 and prefs[0].prompt == rows[0]["prompt"]


H, A = "\n\nHuman: ", "\n\nAssistant: "


def test_hand_written_rows(tmp_path: Path) -> None:
    rows = [
        {
            "chosen": f"{H}Hi{A}Hello!{H}Help me bake{A}Sure: flour first.",
            "rejected": f"{H}Hi{A}Hello!{H}Help me bake{A}No.",
        },
        {"chosen": f"{H}Q{A}", "rejected": f"{H}Q{A}Something"},  # empty chosen reply
        {"chosen": f"{H}Q{A}x", "rejected": f"{H}Other{A}y"},  # different prompts
        {"chosen": f"{H}Q no assistant", "rejected": f"{H}Q{A}y"},
        {"chosen": f"preamble{H}Q{A}x", "rejected": f"preamble{H}Q{A}y"},
        {"chosen": f"{H}Q{A}same", "rejected": f"{H}Q{A} same "},
        {"chosen": 3, "rejected": f"{H}Q{A}y"},
        {"chosen": f"{H}Q{A}a{A}x", "rejected": f"{H}Q{A}a{A}y"},  # two Assistant turns in a row
        {"chosen": f"{H}  {A}x", "rejected": f"{H}  {A}y"},  # empty Human turn
        {"chosen": f"Human: no leading newlines{A}x", "rejected": f"Human: no leading newlines{A}y"},
    ]
    result = convert_hh_rlhf(_write(tmp_path, rows))
    assert result.rows == [
        {
            "prompt": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Help me bake"},
            ],
            "chosen": "Sure: flour first.",
            "rejected": "No.",
        },
        {"prompt": [{"role": "user", "content": "no leading newlines"}], "chosen": "x", "rejected": "y"},
    ]
    assert [(s.line, s.reason) for s in result.skipped] == [
        (2, "empty final reply in chosen"),
        (3, "chosen and rejected differ before the last Assistant reply"),
        (4, "chosen has no '\\n\\nAssistant:' turn"),
        (5, "text before the first Human turn"),
        (6, "identical final replies"),
        (7, "chosen is not a string"),
        (8, "the turn before the last Assistant reply is not a Human turn"),
        (9, "empty Human turn in the prompt"),
    ]
    assert result.reasons()["empty final reply in chosen"] == 1


def test_strict_mode_stops_at_first_bad_row(tmp_path: Path) -> None:
    p = _write(
        tmp_path, [{"chosen": f"{H}Q{A}x", "rejected": f"{H}Q{A}y"}, {"chosen": f"{H}Q{A}", "rejected": "z"}]
    )
    with pytest.raises(DataError) as info:
        convert_hh_rlhf(p, strict=True)
    assert str(info.value) == (
        f"{p}:2: cannot import as HH-RLHF: rejected has no '\\n\\nAssistant:' turn; fix or drop the row,"
        " or import without --strict to skip such rows"
    )


def test_nothing_convertible_is_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path, [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(DataError) as info:
        import_hh_rlhf(p)
    assert str(info.value) == (
        f"{p}: no row could be imported as HH-RLHF (chosen has no '\\n\\nAssistant:' turn (1));"
        " is this an HH-RLHF file?"
    )
