"""Each shared measure has one home: no module outside rlhfops.measures defines its own copy, and
rlhfops.measures sits at the bottom of the layering (imports nothing from rlhfops but errors)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import rlhfops

SRC = Path(rlhfops.__file__).parent
MEASURES = SRC / "measures"

# function names that are a measure of rlhfops.measures (or a copy of one under another name)
MEASURE_FUNCTION = re.compile(
    r"wilson|distinct_?\d|distinct_n|refusal$|^_?is_refus|opening_share|_interval$|ngram_fraction", re.I
)
# module-level constants that hold a refusal rule (marker lists, patterns)
MEASURE_CONSTANT = re.compile(r"REFUSAL_(MARKERS|PATTERNS|WINDOW|PREFIXES)", re.I)


def copies(root: Path) -> list[str]:
    """``path:line name`` of every function or constant outside measures/ named like a shared measure."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if MEASURES in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and MEASURE_FUNCTION.search(
                node.name
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and MEASURE_CONSTANT.search(t.id):
                        found.append(f"{path.relative_to(root)}:{node.lineno} {t.id}")
    return found


def test_no_second_copy_of_a_measure():
    assert copies(SRC) == [], "use rlhfops.measures instead of a local copy"


def test_the_guard_sees_a_copy(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "REFUSAL_MARKERS = ('i cannot',)\n"
        "def wilson(k, n):\n    return 0, 1\n"
        "class A:\n    def distinct_2(self, t):\n        return 1.0\n"
        "def _top_opening_share(texts):\n    return 0.0\n"
        "def over_refusal_rate(rows):\n    return 0.0\n"  # a rate over red-team rows, not a measure copy
    )
    assert sorted(c.split(" ")[1] for c in copies(tmp_path)) == [
        "REFUSAL_MARKERS",
        "_top_opening_share",
        "distinct_2",
        "wilson",
    ]


def test_measures_import_nothing_above_them():
    for path in sorted(MEASURES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rlhfops"):
                assert node.module == "rlhfops.errors" or node.module.startswith("rlhfops.measures"), (
                    f"{path.name} imports {node.module}"
                )
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("rlhfops") for a in node.names), path.name
